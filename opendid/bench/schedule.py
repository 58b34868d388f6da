"""When each timed request of a benchmark starts.

Without a rate every user starts its next login as soon as the last one ends (a closed loop:
the server is saturated and the latency is whatever queue that builds, 32 users / throughput on
average). With a rate the logins start on a fixed timetable, `rate` per second, taken by
whichever of the users is free: the latency a user sees at that offered load. It is measured
from the scheduled start, not the actual one, so a server too slow to keep up shows as the wait
for a free user too, instead of silently lowering the load (coordinated omission).
"""

from __future__ import annotations

import gc
import threading
import time


class Schedule:
    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.origin = time.perf_counter()
        self.late = 0  # logins that found no free user at their time
        self._lock = threading.Lock()

    def start(self) -> None:
        """The timetable's time zero: now."""
        self.origin = time.perf_counter()
        self.late = 0

    def wait_for(self, index: int) -> float:
        """Block until login `index` is due; the time its latency counts from."""
        if self.rate is None:
            return time.perf_counter()
        due = self.origin + index / self.rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not waiting for a result
        elif delay < -0.010:
            with self._lock:
                self.late += 1
        return due

    def describe(self, concurrency: int) -> str:
        if self.rate is None:
            return f"{concurrency} concurrent users, each starting again at once (saturated)"
        return (f"{concurrency} concurrent users taking logins offered at {self.rate:g}/s "
                f"(latency from the scheduled start)")


def settle_heap() -> None:
    """Move the load generator's objects so far (its set-up: prepared logins, the wallet, the
    chain's types) out of its garbage collector's reach. Otherwise each full collection scans
    them all while every simulated user waits, and that pause of the load generator is counted
    as the server's latency (it was most of the p95 when logins are paced)."""
    gc.collect()
    gc.freeze()

"""Purging expired state with bounded work: at most once per interval per process, each step
deleting at most a batch of rows, run by whichever request comes first after the interval.

No background thread: gunicorn forks workers, and a request-driven step needs no life cycle.
A busy service purges every interval; an idle one has nothing new to purge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

PURGE_INTERVAL = 60.0
PURGE_BATCH = 500

Step = Callable[[int], int]


class Housekeeper:
    """Runs its purge steps (each `step(limit) -> rows deleted`) when due."""

    def __init__(self, steps: Sequence[Step], interval: float = PURGE_INTERVAL,
                 batch: int = PURGE_BATCH) -> None:
        self.steps, self.interval, self.batch = list(steps), interval, batch
        self._lock = threading.Lock()
        self._last: float | None = None

    def due(self) -> bool:
        return self._last is None or time.monotonic() - self._last >= self.interval

    def maybe_run(self) -> int:
        """Purge if the interval has passed; a concurrent caller does not wait. Rows deleted."""
        if not self.due() or not self._lock.acquire(blocking=False):
            return 0
        try:
            if not self.due():  # another thread ran it meanwhile
                return 0
            self._last = time.monotonic()
            deleted = 0
            for step in self.steps:
                try:
                    deleted += step(self.batch)
                except Exception as exc:  # best effort: never fail the request that ran it
                    log.warning("purging expired rows failed: %s", exc)
        finally:
            self._lock.release()
        if deleted:
            log.debug("purged %d expired rows", deleted)
        return deleted

"""`python -m opendid.bench credentials`: `POST /api/v1/credentials` alone, at N users.

Every login is first brought to the point where the wallet answers (authorize, session,
credential request) and the wallet's encrypted answer is made, all before the clock starts: the
timed part is the server verifying the presentations (decryption, signatures, chain reads),
issuing the code and the provider session, with no wallet work competing for the cores.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opendid.bench.http import LightSession
from opendid.bench.logins import code_request, cpu_seconds
from opendid.bench.schedule import Schedule, settle_heap
from opendid.bench.server import BenchServer, bench_server, children, percentile
from opendid.devtools.login_driver import LoginDriver


def prepared(server: BenchServer) -> tuple[LoginDriver, dict[str, Any]]:
    """A login waiting for the wallet's credential, and the wallet's encrypted answer."""
    driver = LoginDriver(server.issuer, server.wallet, server.chain, http=LightSession())
    envelope = driver.answer(**code_request(server))
    driver.http.close()  # the server closes idle keep-alive connections while others prepare
    return driver, envelope


def bench_credentials(total: int, concurrency: int, workers: int,
                      threads: int | None = None, rate: float | None = None) -> None:
    schedule = Schedule(rate)
    with bench_server(workers, threads=threads) as server:
        with ThreadPoolExecutor(concurrency) as pool:
            logins = list(pool.map(lambda _: prepared(server), range(total + 1)))
        warm_driver, warm_envelope = logins.pop()
        assert warm_driver.post_credentials(warm_envelope).status_code == 204

        def answer(index: int) -> float:
            driver, envelope = logins[index]
            started = schedule.wait_for(index)
            response = driver.post_credentials(envelope)
            assert response.status_code == 204, response.text
            return (time.perf_counter() - started) * 1000

        settle_heap()
        processes = [server.process.pid, *children(server.process.pid)]
        cpu_before = sum(cpu_seconds(pid) for pid in processes)
        started = time.perf_counter()
        schedule.start()
        with ThreadPoolExecutor(concurrency) as pool:
            samples = list(pool.map(answer, range(total)))
        elapsed = time.perf_counter() - started
        cpu_used = sum(cpu_seconds(pid) for pid in processes) - cpu_before
    print(f"POST /api/v1/credentials alone: {total} prepared logins, "
          f"{schedule.describe(concurrency)}; gunicorn {workers} workers")
    print(f"throughput        {total / elapsed:8.2f} requests/s")
    print(f"latency p50       {statistics.median(samples):8.1f} ms")
    print(f"latency p95       {percentile(samples, 95):8.1f} ms")
    if rate:
        print(f"late starts       {schedule.late:8d} (no user free at the scheduled time)")
    print(f"server CPU/req    {cpu_used / total * 1000:8.2f} ms (master + workers)")

"""`python -m opendid.bench logins`: complete logins under gunicorn, measured.

Throughput, latency overall and per endpoint, the server's CPU time per login (master and
workers, from /proc) and each worker's RSS, PSS and private memory; optionally py-spy samples.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opendid.bench.http import LightSession
from opendid.bench.schedule import Schedule, settle_heap
from opendid.bench.server import (
    BenchInstance,
    bench_server,
    children,
    cpus,
    descendants,
    memory_mib,
    percentile,
    reference_ms,
)
from opendid.devtools.login_driver import LoginDriver
from opendid.server import THREADS


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def endpoint_name(method: str, url: str) -> str:
    """A request's route, without ids and tokens in the path."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    path = "/" + path.split("://", 1)[-1].split("/", 1)[-1]
    if path.startswith("/api/v1/did/"):
        path = "/api/v1/did/<token>"
    return f"{method} {path}"


def code_request(server: BenchInstance) -> dict[str, str]:
    """The authorization request every benchmarked login makes."""
    return {"client_id": server.client_id, "redirect_uri": server.redirect,
            "response_type": "code", "scope": "openid", "state": "s", "nonce": "n"}


def code_login(server: BenchInstance, driver: LoginDriver) -> None:
    """authorize -> challenge x2 -> credentials x2 -> token; AssertionError on any failure."""
    code = driver.login(**code_request(server))["code"]
    response = driver.token(grant_type="authorization_code", code=code,
                            redirect_uri=server.redirect, client_id=server.client_id,
                            client_secret=server.secret)
    assert response.status_code == 200, response.text


def _start_profilers(pids: list[int], folder: str | None) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each worker during the run (only the thread holding the GIL: where the
    CPU goes, not where requests wait): collapsed stacks per worker."""
    if not folder:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate",
                              "250", "--gil", "--output", f"{folder}/worker-{pid}.txt",
                              "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def _stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for spy in profilers:
        spy.send_signal(signal.SIGINT)
    for spy in profilers:
        spy.wait(timeout=60)


def bench_logins(total: int, concurrency: int, workers: int, server_log: str | None,
                 server_cpus: str | None = None, client_cpus: str | None = None,
                 profile: str | None = None, redis: bool = False,
                 threads: int | None = None, rate: float | None = None) -> None:
    """N complete logins (authorize -> challenge -> credential -> token) under gunicorn,
    back to back or offered at `rate` per second (`Schedule`)."""
    schedule = Schedule(rate)
    pinned_client = cpus(client_cpus)
    with bench_server(workers, server_log, server_cpus, redis=redis, threads=threads) as server:
        if pinned_client:
            os.sched_setaffinity(0, pinned_client)
        by_endpoint: dict[str, list[float]] = {}
        lock = threading.Lock()

        def record(method: str, path: str, milliseconds: float) -> None:
            with lock:
                by_endpoint.setdefault(endpoint_name(method, path), []).append(milliseconds)

        def one_login(index: int) -> float:
            started = schedule.wait_for(index)
            driver = LoginDriver(server.issuer, server.wallet, server.chain,
                                 http=LightSession(record))
            code_login(server, driver)
            driver.http.close()
            return (time.perf_counter() - started) * 1000

        one_login(0)  # warm up every layer once
        reference_before = reference_ms()
        by_endpoint.clear()
        processes = [server.process.pid, *children(server.process.pid)]
        node = descendants(server.chain_pid) if server.chain_pid else []
        store = [server.redis.process.pid] if server.redis and server.redis.process else []
        profilers = _start_profilers(processes[1:], profile)
        cpu_before = sum(cpu_seconds(pid) for pid in processes)
        node_before = sum(cpu_seconds(pid) for pid in node)
        store_before = sum(cpu_seconds(pid) for pid in store)
        settle_heap()
        load_before = time.process_time()
        started = time.perf_counter()
        schedule.start()
        with ThreadPoolExecutor(concurrency) as pool:
            samples = list(pool.map(one_login, range(total)))
        elapsed = time.perf_counter() - started
        cpu_used = sum(cpu_seconds(pid) for pid in processes) - cpu_before
        load_used = time.process_time() - load_before
        node_used = sum(cpu_seconds(pid) for pid in node) - node_before
        store_used = sum(cpu_seconds(pid) for pid in store) - store_before
        _stop_profilers(profilers)
        reference = (reference_before + reference_ms()) / 2
        memory = [(pid, memory_mib(pid)) for pid in children(server.process.pid)]
    where = (f"server on CPUs {server_cpus}, load generator on {client_cpus or 'any'}"
             if server_cpus else "server and load generator share every core")
    print(f"{total} logins (authorize -> challenge -> credential -> token), "
          f"{schedule.describe(concurrency)}; gunicorn {workers} workers x "
          f"{threads or THREADS} threads, state in {'Redis' if redis else 'SQLite'}")
    print(f"machine: {os.cpu_count()} cores; {where}; reference task {reference:.1f} ms "
          f"(machine speed: lower is faster)")
    print(f"throughput        {total / elapsed:8.2f} logins/s")
    print(f"latency p50       {statistics.median(samples):8.1f} ms")
    print(f"latency p95       {percentile(samples, 95):8.1f} ms")
    if rate:
        print(f"late starts       {schedule.late:8d} (no user free at the scheduled time)")
    print(f"server CPU/login  {cpu_used / total * 1000:8.2f} ms (master + workers)")
    print(f"load CPU/login    {load_used / total * 1000:8.2f} ms (this process: the wallets)")
    if node:
        print(f"chain CPU/login   {node_used / total * 1000:8.2f} ms (the dev chain's node)")
    if store:
        print(f"Redis CPU/login   {store_used / total * 1000:8.2f} ms (redis-server)")
    print(f"{'endpoint':32} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8}")
    for name, times in sorted(by_endpoint.items()):
        print(f"{name:32} {len(times):6d} {statistics.median(times):8.1f} "
              f"{percentile(times, 95):8.1f}")
    for pid, mib in memory:
        print(f"worker {pid}: RSS {mib['rss']:6.1f} MiB, PSS {mib['pss']:6.1f} MiB, "
              f"private {mib['private']:6.1f} MiB")

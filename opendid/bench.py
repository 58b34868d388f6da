"""Benchmarks: `python -m opendid.bench chain` (and `logins`, see `--help`).

`logins` runs N complete logins with K concurrent users under gunicorn.
`chain` reads one login's chain data (DID document + attestation + web3name) on a warm
connection, and the same with a fresh connection per read as the original OpenDID does, on a
provisioned dev chain (started here unless OPENDID_CHAIN_URL is set).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opendid.devtools.devchain import DevChain
from opendid.devtools.provision import Identities, provision
from opendid.kilt.chain import ChainClient
from opendid.kilt.dids import parse_full_did


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


@contextlib.contextmanager
def dev_chain() -> Iterator[str]:
    url = os.environ.get("OPENDID_CHAIN_URL")
    if url:
        yield url
        return
    with DevChain() as chain:
        yield chain.url


def bench_chain(runs: int) -> None:
    with dev_chain() as url, tempfile.TemporaryDirectory() as tmp:
        client = ChainClient(url)
        state = provision(client, Path(tmp), Identities.fresh(), "http://localhost:3001",
                          ["http://localhost:1606/callback"])
        owner = parse_full_did(state["user"]["did"])
        root = state["credentials"]["trusted"]["rootHash"]

        def warm() -> None:
            records = client.login_records(owner, [root])
            assert records.did and records.attestations[root]

        def fresh() -> None:
            per_read = ChainClient(url)
            per_read.did(owner)
            per_read.attestation(root)
            per_read.web3name(owner)
            per_read.close()

        warm()
        rows = [("warm connection, one batched read", timed(warm, runs)),
                ("fresh connection per read (original)", timed(fresh, max(5, runs // 10)))]
        print(f"chain reads per login (DID + attestation + web3name), dev chain {url}")
        print(f"{'mode':40} {'runs':>5} {'median ms':>10} {'p95 ms':>10}")
        for name, samples in rows:
            print(f"{name:40} {len(samples):5d} {statistics.median(samples):10.2f} "
                  f"{percentile(samples, 95):10.2f}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory_mib(pid: int) -> dict[str, float]:
    """RSS, PSS (shared pages split between the processes sharing them) and private memory."""
    found = {"Rss": 0.0, "Pss": 0.0, "Private_Clean": 0.0, "Private_Dirty": 0.0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in found:
            found[name] = int(rest.split()[0]) / 1024
    return {"rss": found["Rss"], "pss": found["Pss"],
            "private": found["Private_Clean"] + found["Private_Dirty"]}


def _endpoint(method: str, url: str) -> str:
    """A request's route, without ids and tokens in the path."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    path = "/" + path.split("://", 1)[-1].split("/", 1)[-1]
    if path.startswith("/api/v1/did/"):
        path = "/api/v1/did/<token>"
    return f"{method} {path}"


def _cpus(text: str | None) -> set[int] | None:
    """`0`, `0,1` or `0-1`: CPU numbers for sched_setaffinity."""
    if not text:
        return None
    chosen: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        chosen.update(range(int(low), int(high or low) + 1))
    return chosen


def _start_profilers(pids: list[int], folder: str | None) -> list[Any]:
    """py-spy (if installed) sampling each worker during the run: collapsed stacks per worker,
    for flame graphs or `sort | uniq` analysis."""
    import shutil
    import subprocess
    import sys

    if not folder:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate",
                              "250", "--output", f"{folder}/worker-{pid}.txt", "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def _stop_profilers(profilers: list[Any]) -> None:
    import signal

    for spy in profilers:
        spy.send_signal(signal.SIGINT)
    for spy in profilers:
        spy.wait(timeout=60)


def bench_logins(total: int, concurrency: int, workers: int, server_log: str | None,
                 server_cpus: str | None = None, client_cpus: str | None = None,
                 profile: str | None = None) -> None:
    """N complete logins (authorize -> challenge -> credential -> token) under gunicorn."""
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests
    import yaml

    from opendid.devtools.devchain import PROJECT_ROOT, free_port
    from opendid.devtools.login_driver import LoginDriver
    from opendid.devtools.wallet import Wallet

    pinned_server, pinned_client = _cpus(server_cpus), _cpus(client_cpus)
    with dev_chain() as url, tempfile.TemporaryDirectory() as tmp:
        client = ChainClient(url)
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        redirect = f"{issuer}/cb"
        state = provision(client, Path(tmp), Identities.fresh(), issuer, [redirect])
        config = yaml.safe_load(Path(state["config"]).read_text())
        config["issuer"] = issuer
        Path(state["config"]).write_text(yaml.safe_dump(config))
        server = subprocess.Popen(
            [sys.executable, "-m", "opendid.cli", "serve", "--config", state["config"],
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=PROJECT_ROOT, env=dict(os.environ, OPENDID_INSTANCE=f"{tmp}/instance"),
            stdout=open(server_log, "ab") if server_log else subprocess.DEVNULL,  # noqa: SIM115
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, pinned_server)) if pinned_server
            else None)
        if pinned_client:
            os.sched_setaffinity(0, pinned_client)
        by_endpoint: dict[str, list[float]] = {}
        lock = threading.Lock()

        def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            name = _endpoint(response.request.method or "", response.request.url or "")
            with lock:
                by_endpoint.setdefault(name, []).append(
                    response.elapsed.total_seconds() * 1000)

        try:
            for _ in range(200):
                try:
                    if requests.get(issuer + "/api/v1/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.3)
            wallet = Wallet.load(state["wallet"])
            secret = state["client"]["secret"]

            def one_login(_: int) -> float:
                started = time.perf_counter()
                driver = LoginDriver(issuer, wallet, client)
                driver.http.hooks["response"].append(record)
                code = driver.login(client_id=state["client"]["id"], redirect_uri=redirect,
                                    response_type="code", scope="openid", state="s",
                                    nonce="n")["code"]
                response = driver.token(grant_type="authorization_code", code=code,
                                        redirect_uri=redirect, client_id=state["client"]["id"],
                                        client_secret=secret)
                assert response.status_code == 200, response.text
                return (time.perf_counter() - started) * 1000

            one_login(0)  # warm up every layer once
            by_endpoint.clear()
            processes = [server.pid, *_children(server.pid)]
            profilers = _start_profilers(processes[1:], profile)
            cpu_before = sum(_cpu_seconds(pid) for pid in processes)
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                samples = list(pool.map(one_login, range(total)))
            elapsed = time.perf_counter() - started
            cpu_used = sum(_cpu_seconds(pid) for pid in processes) - cpu_before
            _stop_profilers(profilers)
            memory = [(pid, _memory_mib(pid)) for pid in _children(server.pid)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        where = (f"server on CPUs {server_cpus}, load generator on {client_cpus or 'any'}"
                 if server_cpus else "server and load generator share every core")
        print(f"{total} logins (authorize -> challenge -> credential -> token), "
              f"{concurrency} concurrent users, gunicorn {workers} workers, dev chain {url}")
        print(f"machine: {os.cpu_count()} cores; {where}")
        print(f"throughput        {total / elapsed:8.2f} logins/s")
        print(f"latency p50       {statistics.median(samples):8.1f} ms")
        print(f"latency p95       {percentile(samples, 95):8.1f} ms")
        print(f"server CPU/login  {cpu_used / total * 1000:8.2f} ms (master + workers)")
        print(f"{'endpoint':32} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8}")
        for name, times in sorted(by_endpoint.items()):
            print(f"{name:32} {len(times):6d} {statistics.median(times):8.1f} "
                  f"{percentile(times, 95):8.1f}")
        for pid, mib in memory:
            print(f"worker {pid}: RSS {mib['rss']:6.1f} MiB, PSS {mib['pss']:6.1f} MiB, "
                  f"private {mib['private']:6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m opendid.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    chain = sub.add_parser("chain", help="chain reads per login: warm vs fresh connection")
    chain.add_argument("--runs", type=int, default=200)
    logins = sub.add_parser("logins", help="complete logins under gunicorn")
    logins.add_argument("-n", "--total", type=int, default=200)
    logins.add_argument("-k", "--concurrency", type=int, default=8)
    logins.add_argument("-w", "--workers", type=int, default=2)
    logins.add_argument("--server-log", help="append gunicorn's output to this file")
    logins.add_argument("--server-cpus", help="pin the server to these CPUs (e.g. 0 or 0-1)")
    logins.add_argument("--client-cpus", help="pin the load generator to these CPUs (e.g. 1)")
    logins.add_argument("--profile", metavar="DIR",
                        help="sample each worker with py-spy into DIR (collapsed stacks)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.what == "chain":
        bench_chain(args.runs)
    else:
        bench_logins(args.total, args.concurrency, args.workers, args.server_log,
                     args.server_cpus, args.client_cpus, args.profile)


if __name__ == "__main__":
    main()

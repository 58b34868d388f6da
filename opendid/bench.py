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


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_logins(total: int, concurrency: int, workers: int, server_log: str | None) -> None:
    """N complete logins (authorize -> challenge -> credential -> token) under gunicorn."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import requests
    import yaml

    from opendid.devtools.devchain import PROJECT_ROOT, free_port
    from opendid.devtools.login_driver import LoginDriver
    from opendid.devtools.wallet import Wallet

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
            stderr=subprocess.STDOUT)
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
                code = driver.login(client_id=state["client"]["id"], redirect_uri=redirect,
                                    response_type="code", scope="openid", state="s",
                                    nonce="n")["code"]
                response = driver.token(grant_type="authorization_code", code=code,
                                        redirect_uri=redirect, client_id=state["client"]["id"],
                                        client_secret=secret)
                assert response.status_code == 200, response.text
                return (time.perf_counter() - started) * 1000

            one_login(0)  # warm up every layer once
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                samples = list(pool.map(one_login, range(total)))
            elapsed = time.perf_counter() - started
            rss = [(pid, _rss_mib(pid)) for pid in _children(server.pid)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"{total} logins (authorize -> challenge -> credential -> token), "
              f"{concurrency} concurrent users, gunicorn {workers} workers, dev chain {url}")
        print("(the Python wallet and HTTP clients share the machine's cores with the server)")
        print(f"throughput   {total / elapsed:8.2f} logins/s")
        print(f"latency p50  {statistics.median(samples):8.1f} ms")
        print(f"latency p95  {percentile(samples, 95):8.1f} ms")
        for pid, mib in rss:
            print(f"worker {pid} RSS {mib:6.1f} MiB")


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.what == "chain":
        bench_chain(args.runs)
    else:
        bench_logins(args.total, args.concurrency, args.workers, args.server_log)


if __name__ == "__main__":
    main()

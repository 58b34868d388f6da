"""Running a provisioned OpenDID under gunicorn for the benchmarks: dev chain (or
$OPENDID_CHAIN_URL), provisioning, optional TCP proxy to the chain and Redis for the state."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import requests
import yaml

from opendid.devtools.devchain import PROJECT_ROOT, DevChain, free_port
from opendid.devtools.provision import Identities, provision
from opendid.devtools.redis_server import RedisServer
from opendid.devtools.tcp_proxy import TcpProxy
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient


@contextlib.contextmanager
def dev_chain() -> Iterator[tuple[str, int | None]]:
    """The chain's URL, and its node's pid when the bench started it ($OPENDID_CHAIN_URL: a
    running chain, no pid)."""
    url = os.environ.get("OPENDID_CHAIN_URL")
    if url:
        yield url, None
        return
    with DevChain() as chain:
        yield chain.url, chain.process.pid if chain.process else None


def cpus(text: str | None) -> set[int] | None:
    """`0`, `0,1` or `0-1`: CPU numbers for sched_setaffinity."""
    if not text:
        return None
    chosen: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        chosen.update(range(int(low), int(high or low) + 1))
    return chosen


PROVISIONING_TIMEOUT = 30.0


@dataclass
class BenchInstance:
    """A provisioned OpenDID instance folder, not yet served."""

    config: Path
    instance: Path
    issuer: str
    redirect: str
    client_id: str
    secret: str
    wallet: Wallet
    chain: ChainClient
    chain_pid: int | None
    proxy: TcpProxy | None
    redis: RedisServer | None


@dataclass
class BenchServer(BenchInstance):
    """A provisioned instance running under gunicorn (`opendid serve`)."""

    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def bench_instance(proxy: bool = False, redis: bool = False) -> Iterator[BenchInstance]:
    """Dev chain, provisioning and config for an OpenDID at a free local port. With `proxy`
    its chain connection goes through a TcpProxy the caller can cut; with `redis` its state is
    in a fresh Redis."""
    with dev_chain() as (url, chain_pid), tempfile.TemporaryDirectory() as tmp:
        # provisioning waits for each block: on a busy machine that takes longer than a read
        client = ChainClient(url, timeout=PROVISIONING_TIMEOUT)
        issuer = f"http://127.0.0.1:{free_port()}"
        redirect = f"{issuer}/cb"
        state = provision(client, Path(tmp), Identities.fresh(), issuer, [redirect])
        chain_proxy = TcpProxy(int(url.rsplit(":", 1)[1])).start() if proxy else None
        store = RedisServer(Path(tmp) / "redis").start() if redis else None
        config = yaml.safe_load(Path(state["config"]).read_text())
        config["issuer"] = issuer
        if chain_proxy:
            config["kiltEndpoint"] = chain_proxy.url
        if store:
            config["store"] = {"url": store.url}
        Path(state["config"]).write_text(yaml.safe_dump(config))
        try:
            yield BenchInstance(Path(state["config"]), Path(tmp) / "instance", issuer, redirect,
                                state["client"]["id"], state["client"]["secret"],
                                Wallet.load(state["wallet"]), client, chain_pid, chain_proxy,
                                store)
        finally:
            if chain_proxy:
                chain_proxy.stop()
            if store:
                store.stop()
            client.close()


@contextlib.contextmanager
def bench_server(workers: int, server_log: str | None = None, server_cpus: str | None = None,
                 proxy: bool = False, redis: bool = False,
                 threads: int | None = None) -> Iterator[BenchServer]:
    """OpenDID under gunicorn (`opendid serve`) on a provisioned dev chain (`bench_instance`)."""
    pinned = cpus(server_cpus)
    with bench_instance(proxy, redis) as ready:
        server = subprocess.Popen(
            [sys.executable, "-m", "opendid.cli", "serve", "--config", str(ready.config),
             "--host", "127.0.0.1", "--port", ready.issuer.rsplit(":", 1)[1],
             "--workers", str(workers), *(["--threads", str(threads)] if threads else [])],
            cwd=PROJECT_ROOT, env=dict(os.environ, OPENDID_INSTANCE=str(ready.instance)),
            stdout=open(server_log, "ab") if server_log else subprocess.DEVNULL,  # noqa: SIM115
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, pinned)) if pinned else None)
        try:
            for _ in range(200):
                try:
                    if requests.get(ready.issuer + "/api/v1/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.3)
            yield BenchServer(**{f.name: getattr(ready, f.name) for f in fields(ready)},
                              process=server)
        finally:
            server.terminate()
            server.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (npx starts node as a child)."""
    found = [pid]
    for child in children(pid):
        found += descendants(child)
    return found


def children(pid: int) -> list[int]:
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


def memory_mib(pid: int) -> dict[str, float]:
    """RSS, PSS (shared pages split between the processes sharing them) and private memory."""
    found = {"Rss": 0.0, "Pss": 0.0, "Private_Clean": 0.0, "Private_Dirty": 0.0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in found:
            found[name] = int(rest.split()[0]) / 1024
    return {"rss": found["Rss"], "pss": found["Pss"],
            "private": found["Private_Clean"] + found["Private_Dirty"]}


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


REFERENCE_DOCUMENT = {"claims": {f"k{i}": [i, str(i), {"x": i * 0.5}] for i in range(50)}}


def reference_ms() -> float:
    """CPU time of a fixed pure-Python task (200 JSON round trips), the median of 40 short
    samples: this VM's speed varies by tens of percent with its host's load, so a run's
    results are quoted beside it (a lower figure is a faster machine at that moment)."""
    samples = []
    for _ in range(40):
        started = time.thread_time()
        for _ in range(20):
            json.loads(json.dumps(REFERENCE_DOCUMENT))
        samples.append(time.thread_time() - started)
    return statistics.median(samples) * 10 * 1000

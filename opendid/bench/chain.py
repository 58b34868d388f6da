"""`python -m opendid.bench chain`: one login's chain reads (DID document + attestation +
web3name) on a warm connection, and with a fresh connection per read as the original does."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opendid.bench.server import dev_chain, percentile
from opendid.devtools.provision import Identities, provision
from opendid.kilt.chain import ChainClient
from opendid.kilt.dids import parse_full_did


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_chain(runs: int) -> None:
    with dev_chain() as (url, _), tempfile.TemporaryDirectory() as tmp:
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

"""The benchmarks run end to end (tiny sizes) against the session's dev chain, and report
what the README quotes from them."""

from __future__ import annotations

import re

import pytest

from opendid.bench.credentials import bench_credentials
from opendid.bench.endpoints import bench_endpoints
from opendid.bench.logins import bench_logins


@pytest.fixture(autouse=True)
def _session_chain(chain_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENDID_CHAIN_URL", chain_url)  # provision on it, start no other chain


def figure(output: str, label: str) -> float:
    found = re.search(rf"^{label}\s+([\d.]+)", output, re.MULTILINE)
    assert found, f"{label!r} missing from:\n{output}"
    return float(found.group(1))


def test_paced_logins_under_gunicorn(capsys: pytest.CaptureFixture[str]) -> None:
    bench_logins(6, 2, 1, None, rate=20.0)
    output = capsys.readouterr().out
    assert "offered at 20/s" in output
    # the sixth login is not due before 5/20 s: paced, six logins cannot finish faster
    assert 0 < figure(output, "throughput") <= 6 / (5 / 20.0)
    assert figure(output, "latency p95") >= figure(output, "latency p50") > 0
    assert figure(output, "server CPU/login") >= 0  # /proc counts in 10 ms ticks: a few
    # logins may not reach one (the README's figures come from thousands of logins)
    assert "late starts" in output
    for endpoint in ("GET /api/v1/authorize", "POST /api/v1/credentials", "POST /api/v1/token"):
        assert re.search(rf"^{endpoint}\s+6 ", output, re.MULTILINE), output
    assert re.search(r"^worker \d+: RSS .* PSS .* private", output, re.MULTILINE)


def test_credentials_alone(capsys: pytest.CaptureFixture[str]) -> None:
    bench_credentials(4, 2, 1)
    output = capsys.readouterr().out
    assert "each starting again at once (saturated)" in output
    assert figure(output, "throughput") > 0
    assert figure(output, "server CPU/req") >= 0  # four requests may not reach one tick


def test_endpoints_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    bench_endpoints(2, 2)
    output = capsys.readouterr().out
    assert "state in SQLite" in output
    assert re.search(r"^POST /api/v1/credentials\s+[\d.]+\s+[\d.]+$", output, re.MULTILINE)
    assert re.search(r"^one login\s+[\d.]+\s+[\d.]+$", output, re.MULTILINE)

"""`python -m opendid.bench endpoints`: the app's own CPU time per endpoint, in one process.

Complete logins run against the Flask app in this process (no gunicorn, no sockets), and each
request's CPU time inside the app is measured with the thread's clock. The best of several
rounds is reported: host noise only ever adds time, so the minimum is the repeatable figure to
compare two versions of the code by, where the full `logins` bench varies by ±10 %.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask
from requests.structures import CaseInsensitiveDict

from opendid.bench.logins import code_login, endpoint_name
from opendid.bench.server import bench_instance, reference_ms
from opendid.devtools.login_driver import LoginDriver

Record = Callable[[str, float], None]  # endpoint, CPU seconds


class AppSession(requests.Session):
    """`requests`' interface onto the app's test client: a browser's cookies, no network."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        parts = urlsplit(str(url))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.client.open(target, method=str(method), json=kwargs.get("json"),
                                  data=kwargs.get("data"))
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers.items())
        response._content = answer.get_data()
        response.encoding = "utf-8"
        response.url = str(url)
        return response


def timed(app: Flask, record: Record) -> None:
    """Wrap the app so each request's CPU time (this thread's) is recorded by endpoint."""
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.thread_time()
        try:
            return inner(environ, start_response)
        finally:
            record(endpoint_name(environ["REQUEST_METHOD"], environ["PATH_INFO"]),
                   time.thread_time() - started)

    app.wsgi_app = wsgi  # type: ignore[method-assign]


def bench_endpoints(logins: int, rounds: int, redis: bool = False) -> None:
    from opendid.application import create_app

    with bench_instance(redis=redis) as ready:
        app = create_app(ready.config, instance_path=ready.instance)
        spent: dict[str, list[float]] = {}
        timed(app, lambda name, seconds: spent.setdefault(name, []).append(seconds))

        def one_round() -> dict[str, float]:
            spent.clear()
            for _ in range(logins):
                code_login(ready, LoginDriver(ready.issuer, ready.wallet, ready.chain,
                                              http=AppSession(app)))
            return {name: statistics.fmean(times) * 1000 for name, times in spent.items()}

        one_round()  # warm up every layer once
        reference = reference_ms()
        results = [one_round() for _ in range(rounds)]
    print(f"CPU time in the app per request, in process (no gunicorn): best of {rounds} "
          f"rounds of {logins} logins, state in {'Redis' if redis else 'SQLite'}; reference "
          f"task {reference:.1f} ms (lower is faster)")
    print(f"{'endpoint':32} {'best ms':>8} {'median ms':>10}")
    for name in sorted(results[0]):
        values = [result[name] for result in results]
        print(f"{name:32} {min(values):8.3f} {statistics.median(values):10.3f}")
    totals = [sum(result.values()) for result in results]
    print(f"{'one login':32} {min(totals):8.3f} {statistics.median(totals):10.3f}")

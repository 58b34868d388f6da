"""A light HTTP client for the load generator, behind requests' Session interface.

`requests` costs the load generator about 1.5 ms of CPU per call (proxy settings read from the
environment, cookie-jar policy, URL re-parsing): on a shared 2-core machine that CPU is taken
from the server being measured. This client does what a login needs and no more: one keep-alive
connection to one server, cookies by name, no redirects followed. It returns real
`requests.Response` objects, so `LoginDriver` and its callers see no difference.
"""

from __future__ import annotations

import http.client
import json
import select
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

Timing = Callable[[str, str, float], None]  # method, path, milliseconds


class LightSession(requests.Session):
    """One client's connection and cookies. `on_response` gets each call's server time."""

    def __init__(self, on_response: Timing | None = None) -> None:
        super().__init__()
        self.on_response = on_response
        self._connection: http.client.HTTPConnection | None = None
        self._jar: dict[str, str] = {}

    def request(self, method: str | bytes, url: str | bytes, params: Any = None,
                data: Any = None, headers: Any = None, cookies: Any = None, files: Any = None,
                auth: Any = None, timeout: Any = None, allow_redirects: bool = True,
                proxies: Any = None, hooks: Any = None, stream: Any = None, verify: Any = None,
                cert: Any = None, json: Any = None) -> requests.Response:
        if any(x is not None for x in (params, headers, cookies, files, auth, proxies, hooks,
                                       stream, verify, cert)):
            raise NotImplementedError("LightSession sends bodies and cookies only")
        method, url = str(method), str(url)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body, sent = _body(data, json)
        if self._jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._jar.items())
        connection = self._connected(parts.hostname or "", parts.port or 80, timeout)
        started = time.perf_counter()
        connection.request(method, target, body=body, headers=sent)
        raw = connection.getresponse()
        content = raw.read()
        elapsed = time.perf_counter() - started
        if self.on_response:
            self.on_response(method, parts.path, elapsed * 1000)
        for line in raw.headers.get_all("Set-Cookie") or []:
            self._keep_cookie(line)
        if raw.will_close:
            self.close()
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.headers.items())
        response._content = content
        response.encoding = "utf-8"
        response.url = url
        response.reason = raw.reason
        response.elapsed = timedelta(seconds=elapsed)
        return response

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connected(self, host: str, port: int, timeout: Any) -> http.client.HTTPConnection:
        """The open connection, or a new one when there is none or the server has closed it
        (an idle keep-alive connection reads as ready: EOF)."""
        connection = self._connection
        if connection is not None and connection.sock is not None:
            ready, _, _ = select.select([connection.sock], [], [], 0)
            if not ready:
                return connection
        self.close()
        self._connection = http.client.HTTPConnection(host, port, timeout=timeout or 30)
        return self._connection

    def _keep_cookie(self, line: str) -> None:
        pair, _, attributes = line.partition(";")
        name, _, value = pair.strip().partition("=")
        lowered = attributes.lower().replace(" ", "")
        if not value or "max-age=0" in lowered or "expires=thu,01jan1970" in lowered:
            self._jar.pop(name, None)
        else:
            self._jar[name] = value


def _body(data: Any, payload: Any) -> tuple[bytes | None, dict[str, str]]:
    if payload is not None:
        return json.dumps(payload).encode(), {"Content-Type": "application/json"}
    if data is not None:
        return urlencode(data).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    return None, {}

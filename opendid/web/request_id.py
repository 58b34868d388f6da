"""A request id for every request, in the `X-Request-Id` response header and the login outcome
log line. A proxy's incoming id is kept when it is short and of safe characters (so one id ties
the proxy's and our lines together); anything else is replaced, so it can never forge or break
a log line."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-Id"
SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def current() -> str:
    """This request's id (made on first use, should a hook before ours have answered)."""
    value = g.get("request_id")
    if value is None:
        value = g.request_id = uuid.uuid4().hex
    return str(value)


def register(app: Flask) -> None:
    """Call before any other `before_request` hook: one that answers skips those after it."""

    @app.before_request
    def assign() -> None:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if SAFE.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def echo(response: Response) -> Response:
        response.headers[HEADER] = current()
        return response

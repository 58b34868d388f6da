"""Every failure gets a clear 4xx/503 answer; anything else is logged as the bug it is."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from opendid.kilt.errors import ChainError, ChainUnavailable
from opendid.login.service import LoginError
from opendid.redact import RedactingFilter, redact
from opendid.store.sessions import UNREACHABLE, unavailable
from opendid.web import outcomes

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def state_store_down() -> Response:
    """The shared state store (Redis) is unreachable: a clean 503 (nothing was half-done, try
    again soon), counted as a login outcome when it ends a login step."""
    if outcomes.is_login_step():
        outcomes.login_failed("state_unavailable", 503)
    response = Response()
    unavailable(response)
    return response


def register(app: Flask) -> None:
    _redact_werkzeug_log()

    @app.errorhandler(LoginError)
    def login_error(exc: LoginError) -> Response:
        outcomes.login_failed(exc.reason, exc.status)
        return Response(exc.message, status=exc.status, mimetype="text/plain")

    @app.errorhandler(ChainUnavailable)
    def chain_unavailable(exc: ChainUnavailable) -> Response:
        log.warning("%s %s: %s", request.method, redact(request.path), exc)
        if outcomes.is_login_step():
            outcomes.login_failed("chain_unavailable", 503)
        return Response("KILT chain unreachable", status=503, mimetype="text/plain",
                        headers={"Retry-After": "5"})

    @app.errorhandler(ChainError)
    def chain_error(exc: ChainError) -> Response:
        log.warning("%s %s: chain error: %s", request.method, redact(request.path), exc)
        if outcomes.is_login_step():
            outcomes.login_failed("chain_error", 503)
        return Response("KILT chain error", status=503, mimetype="text/plain")

    def state_unavailable(exc: Exception) -> Response:
        """The shared state store (Redis) is down: nothing was half-done, try again soon."""
        log.warning("%s %s: state store unreachable: %s", request.method, redact(request.path),
                    type(exc).__name__)
        return state_store_down()

    for kind in UNREACHABLE:
        app.register_error_handler(kind, state_unavailable)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return Response(f"{exc.code} {exc.name}: {exc.description}", status=exc.code or 400,
                        mimetype="text/plain")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, redact(request.path))
        return Response("Internal error", status=500, mimetype="text/plain")

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


def _redact_werkzeug_log() -> None:
    """werkzeug's request log (dev servers, tests) prints the path: keep login tokens out."""
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactingFilter) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(RedactingFilter())

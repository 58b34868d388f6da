"""The browser-session cookie is deleted with the attributes it was set with (Secure, HttpOnly,
SameSite), in both session stores: Flask-Session's own deletion carried none of them, so behind
https the deletion went out without Secure (found by tests/test_deploy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask, session
from redis import Redis

from opendid.store.sessions import session_interface


def _app(tmp_path: Path, redis: Redis | None) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 32, SESSION_COOKIE_NAME="opendid",
                      SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = session_interface(app, tmp_path, redis)

    @app.get("/set")
    def set_value() -> str:
        session["login"] = "x"
        return "set"

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    return app


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_the_session_cookie_is_deleted_as_it_was_set(tmp_path, request, store):
    redis = Redis.from_url(request.getfixturevalue("redis_url")) if store == "redis" else None
    client = _app(tmp_path, redis).test_client()
    set_cookie = client.get("/set").headers.getlist("Set-Cookie")
    assert len(set_cookie) == 1 and set_cookie[0].startswith("opendid=")
    deleted = client.get("/clear").headers.getlist("Set-Cookie")
    assert len(deleted) == 1, deleted
    assert deleted[0].startswith("opendid=;") and "Max-Age=0" in deleted[0]
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in set_cookie[0] and attribute in deleted[0], (attribute, deleted)

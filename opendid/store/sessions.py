"""Browser sessions (Flask-Session's server-side sessions): in a SQLite table of our own, or in
the shared Redis (Flask-Session's Redis backend) when the state is there.

Flask-Session's SQLAlchemy backend spent about a quarter of a worker's time per login (ORM,
session open/commit, its retry wrapper). Here each read, write or delete is one SQL statement
on the worker's own connection, in a database file of its own (`sessions.db`), so session
writes do not wait for the write lock of the login state in `opendid.db`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, Request, Response, g
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from opendid.store.db import Connections

SCHEMA = """
CREATE TABLE IF NOT EXISTS browser_sessions (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS browser_sessions_expiry ON browser_sessions (expires_at);
DROP TABLE IF EXISTS sessions;
"""
# (`sessions` was Flask-Session's SQLAlchemy table of earlier versions: logins in progress
# during an upgrade start again.)

SESSION_ID_BYTES = 32
STATE_UNAVAILABLE = "State store unreachable"
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)  # Redis down or not answering
log = logging.getLogger(__name__)


class DeletesWithAttributes:
    """Flask-Session deletes the session cookie without the attributes it set it with: behind
    https the deletion went out without Secure, HttpOnly and SameSite. Re-issued with them.
    And a session that was never stored is not deleted from the store when its id changes."""

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        session: ServerSideSession = super().open_session(app, request)  # type: ignore[misc]
        session.stored = bool(session)  # Flask-Session stores no empty session
        return session

    def regenerate(self, session: ServerSideSession) -> None:
        if getattr(session, "stored", True):
            super().regenerate(session)  # type: ignore[misc]
        elif session:
            interface: ServerSideSessionInterface = self  # type: ignore[assignment]
            session.sid = interface._generate_sid(interface.sid_length)
            session.modified = True

    def save_session(self, app: Flask, session: ServerSideSession,
                     response: Response) -> None:
        super().save_session(app, session, response)  # type: ignore[misc]
        interface: ServerSideSessionInterface = self  # type: ignore[assignment]
        name = interface.get_cookie_name(app)
        cookies = response.headers.getlist("Set-Cookie")
        bare = [cookie for cookie in cookies if cookie.startswith(f"{name}=;")]
        if not bare:
            return
        response.headers.remove("Set-Cookie")
        for cookie in cookies:
            if cookie not in bare:
                response.headers.add("Set-Cookie", cookie)
        response.delete_cookie(name, path=interface.get_cookie_path(app),
                               domain=interface.get_cookie_domain(app),
                               secure=interface.get_cookie_secure(app),
                               httponly=interface.get_cookie_httponly(app),
                               samesite=interface.get_cookie_samesite(app))


class SqliteSessionInterface(DeletesWithAttributes, ServerSideSessionInterface):
    """Server-side sessions keyed by a random id in the cookie; expired rows are never read and
    are purged in bounded batches by the housekeeper (`purge`)."""

    session_class = ServerSideSession
    ttl = True  # expiry is checked on read; the purge is the housekeeper's, not Flask-Session's

    def __init__(self, app: Flask, path: Path) -> None:
        self.connections = Connections(path)
        self._connect().executescript(SCHEMA)
        super().__init__(app, key_prefix="", use_signer=False, permanent=True,
                         sid_length=SESSION_ID_BYTES, serialization_format="msgpack",
                         cleanup_n_requests=None)

    def _connect(self) -> sqlite3.Connection:
        return self.connections.connect()

    def close(self) -> None:
        """Close this thread's connection (before gunicorn forks)."""
        self.connections.close()

    def _retrieve_session_data(self, store_id: str) -> dict | None:  # type: ignore[type-arg]
        row = self._connect().execute(
            "SELECT data FROM browser_sessions WHERE id = ? AND expires_at > ?",
            (store_id, time.time())).fetchone()
        return None if row is None else self.serializer.decode(row[0])  # type: ignore[union-attr]

    def _delete_session(self, store_id: str) -> None:
        self._connect().execute("DELETE FROM browser_sessions WHERE id = ?", (store_id,))

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession,
                        store_id: str) -> None:
        data = self.serializer.encode(session)  # type: ignore[union-attr]
        self._connect().execute(
            "INSERT INTO browser_sessions (id, data, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data, "
            "expires_at = excluded.expires_at",
            (store_id, data, time.time() + session_lifetime.total_seconds()))

    def purge(self, limit: int) -> int:
        """Delete up to `limit` expired sessions (a housekeeper step)."""
        cursor = self._connect().execute(
            "DELETE FROM browser_sessions WHERE id IN (SELECT id FROM browser_sessions "
            "WHERE expires_at <= ? LIMIT ?)", (time.time(), limit))
        return cursor.rowcount


class SharedSessionInterface(DeletesWithAttributes, RedisSessionInterface):
    """Flask-Session's Redis sessions, failing cleanly while Redis is unreachable.

    Flask opens the session before any view or error handler runs, and saves it after the
    response is made; an exception in either place would be a 500. Instead the request is
    marked (`g.state_unavailable`, answered with a 503 by a before-request hook) or the finished
    response is turned into a 503: a step whose session could not be saved did not happen.
    """

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        try:
            return super().open_session(app, request)
        except UNREACHABLE as exc:
            log.warning("sessions: Redis unreachable: %s", type(exc).__name__)
            g.state_unavailable = True
            return self.session_class(sid=self._generate_sid(self.sid_length),
                                      permanent=self.permanent)

    def save_session(self, app: Flask, session: ServerSideSession,  # type: ignore[override]
                     response: Response) -> None:
        if g.get("state_unavailable"):
            return
        try:
            super().save_session(app, session, response)
        except UNREACHABLE as exc:
            log.warning("sessions: could not save, Redis unreachable: %s", type(exc).__name__)
            unavailable(response)


def unavailable(response: Response) -> None:
    """Make `response` the state store's 503, whatever it was."""
    response.status_code = 503
    response.set_data(STATE_UNAVAILABLE)
    response.mimetype = "text/plain"
    for header in ("Location", "Set-Cookie"):
        response.headers.pop(header, None)
    response.headers["Retry-After"] = "5"


def session_interface(app: Flask, instance: Path,
                      redis: Redis | None) -> SqliteSessionInterface | SharedSessionInterface:
    """SQLite in the instance folder, or the state store's Redis (sessions expire by TTL)."""
    if redis is None:
        return SqliteSessionInterface(app, instance / "sessions.db")
    return SharedSessionInterface(app, client=redis, key_prefix="opendid:session:",
                                 permanent=True, sid_length=SESSION_ID_BYTES,
                                 serialization_format="msgpack")

"""Admin sessions: a random id in the admin's cookie, only its SHA-256 stored, with the DID,
the session's CSRF token and a fixed expiry (use does not extend it)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from opendid.store.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS admin_sessions (
    id_hash TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_sessions_expiry ON admin_sessions (expires_at);
"""


@dataclass(frozen=True)
class AdminSession:
    id_hash: str
    did: str
    csrf: str
    expires_at: float

    def csrf_matches(self, given: str | None) -> bool:
        """Constant-time: the form's token must be this session's."""
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.csrf.encode())


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class AdminSessions:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.connect().executescript(SCHEMA)

    def create(self, did: str, lifetime: int) -> tuple[str, AdminSession]:
        """A new session (its id goes in the cookie, never stored) for a DID just logged in."""
        session_id = secrets.token_urlsafe(32)
        session = AdminSession(_digest(session_id), did, secrets.token_urlsafe(32),
                               time.time() + lifetime)
        self.db.connect().execute(
            "INSERT INTO admin_sessions (id_hash, did, csrf, expires_at) VALUES (?, ?, ?, ?)",
            (session.id_hash, session.did, session.csrf, session.expires_at))
        return session_id, session

    def find(self, session_id: str | None) -> AdminSession | None:
        if not session_id:
            return None
        row = self.db.connect().execute(
            "SELECT id_hash, did, csrf, expires_at FROM admin_sessions WHERE id_hash = ?",
            (_digest(session_id),)).fetchone()
        if row is None or row[3] < time.time():
            return None
        return AdminSession(row[0], row[1], row[2], row[3])

    def end(self, session: AdminSession) -> None:
        self.db.connect().execute("DELETE FROM admin_sessions WHERE id_hash = ?",
                                  (session.id_hash,))

    def purge(self, limit: int = 500) -> int:
        cursor = self.db.connect().execute(
            "DELETE FROM admin_sessions WHERE rowid IN "
            "(SELECT rowid FROM admin_sessions WHERE expires_at < ? LIMIT ?)",
            (time.time(), limit))
        return cursor.rowcount

"""The provider's login sessions (single sign-on), one row per browser session.

The browser holds a random id (256 bits); only its SHA-256 is stored, so a database leak gives
no usable cookie. A row records who logged in (DID), when (`auth_time`), and which credential
requirements that browser's logins satisfied (by a fingerprint of the requirements), each with
the identity to issue tokens from. Every completed wallet login replaces the row under a new id
(no fixation) and renews its expiry; reusing a session never extends it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opendid.login.identity import Identity
from opendid.store.db import Database, write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sso_sessions (
    id_hash TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sso_sessions_expiry ON sso_sessions (expires_at);
"""

# token_urlsafe(32): 43 characters of the base64url alphabet; anything else is not one of ours
SESSION_ID_LENGTH = 43
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def requirements_fingerprint(requirements: Sequence[Mapping[str, Any]]) -> str:
    """One value per policy: same CTypes, attesters and properties in any order give the same
    fingerprint; any change to a client's requirements gives another."""
    canonical = sorted(
        json.dumps({"cTypeHash": r.get("cTypeHash"),
                    "trustedAttesters": sorted(r.get("trustedAttesters") or []),
                    "requiredProperties": sorted(r.get("requiredProperties") or [])},
                   sort_keys=True)
        for r in requirements)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


@dataclass(frozen=True)
class Satisfied:
    """A login in this session that met a client's requirements, and what it proved."""

    client_id: str
    fingerprint: str
    identity: Identity

    def to_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "fingerprint": self.fingerprint,
                "identity": self.identity.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Satisfied:
        return cls(str(data["client_id"]), str(data["fingerprint"]),
                   Identity.from_dict(dict(data["identity"])))


@dataclass(frozen=True)
class SsoSession:
    did: str
    web3name: str | None
    auth_time: int
    expires_at: float
    satisfied: tuple[Satisfied, ...] = field(default_factory=tuple)


def session_key(session_id: str) -> str | None:
    """The row key of a cookie value, or None for a value we cannot have issued."""
    if len(session_id) != SESSION_ID_LENGTH or not set(session_id) <= _ALPHABET:
        return None
    return hashlib.sha256(session_id.encode()).hexdigest()


class SsoStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.connect().executescript(SCHEMA)

    def find(self, session_id: str | None) -> SsoSession | None:
        """The live session behind a cookie value; None when absent, unknown or expired."""
        key = session_key(session_id) if session_id else None
        if key is None:
            return None
        row = self.db.connect().execute(
            "SELECT did, auth_time, data, expires_at FROM sso_sessions "
            "WHERE id_hash = ? AND expires_at > ?", (key, time.time())).fetchone()
        if row is None:
            return None
        data = json.loads(row[2])
        return SsoSession(row[0], data.get("web3name"), int(row[1]), float(row[3]),
                          tuple(Satisfied.from_dict(s) for s in data.get("satisfied", [])))

    def login(self, previous_id: str | None, client_id: str, fingerprint: str,
              identity: Identity, lifetime: int) -> str:
        """Record a completed wallet login; returns the new session id for the cookie.

        The previous session (if any) is taken over atomically: its satisfied requirements are
        kept when it was the same DID, dropped when another DID logs in on this browser."""
        new_id = secrets.token_urlsafe(32)
        conn = self.db.connect()
        old_key = session_key(previous_id) if previous_id else None
        with write_transaction(conn):
            kept: list[dict[str, Any]] = []
            if old_key is not None:
                row = conn.execute(
                    "DELETE FROM sso_sessions WHERE id_hash = ? AND expires_at > ? "
                    "RETURNING did, data", (old_key, time.time())).fetchone()
                if row is not None and row[0] == identity.did:
                    kept = [s for s in json.loads(row[1]).get("satisfied", [])
                            if s.get("fingerprint") != fingerprint]
            entry = Satisfied(client_id, fingerprint, identity).to_dict()
            data = {"web3name": identity.web3name, "satisfied": [*kept, entry]}
            conn.execute(
                "INSERT INTO sso_sessions (id_hash, did, auth_time, data, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_key(new_id), identity.did, identity.auth_time, json.dumps(data),
                 identity.auth_time + lifetime))
        return new_id

    def end(self, session_id: str | None) -> SsoSession | None:
        """Delete the session (logout); the ended session, or None if there was none. Of two
        racing logouts one gets the session, the other None."""
        key = session_key(session_id) if session_id else None
        if key is None:
            return None
        row = self.db.connect().execute(
            "DELETE FROM sso_sessions WHERE id_hash = ? RETURNING did, auth_time, data, "
            "expires_at", (key,)).fetchone()
        if row is None or row[3] <= time.time():
            return None
        data = json.loads(row[2])
        return SsoSession(row[0], data.get("web3name"), int(row[1]), float(row[3]))

    def purge(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired sessions (bounded work); how many went."""
        cursor = self.db.connect().execute(
            "DELETE FROM sso_sessions WHERE rowid IN "
            "(SELECT rowid FROM sso_sessions WHERE expires_at < ? LIMIT ?)", (time.time(), limit))
        return cursor.rowcount

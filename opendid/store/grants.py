"""Authorization codes and issued tokens, stored by hash; one grant id ties them together.

A code is marked used and its tokens saved in one transaction; a second redemption revokes
every token its grant issued (RFC 6749 §4.1.2). A refresh token is rotated in one transaction
too (old one marked rotated, new ones saved); presenting a rotated one again revokes its grant
(RFC 9700 §4.14.2). A revoked grant is remembered for a while, so no token is saved live for it
afterwards.

Revocation (RFC 7009) revokes one access token, or a refresh token's whole grant; introspection
(RFC 7662) reads a live token's record, with the time it was issued (`issued_at`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from opendid.store.db import Database, add_columns, write_transaction

# tokens.revoked: a token is live, revoked (with its grant), or rotated (a refresh token that
# was exchanged for a new one; seeing it again is a reuse).
LIVE, REVOKED, ROTATED = 0, 1, 2
REVOKED_GRANT_TTL = 3600.0  # longer than a code lives and any request takes

SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked_grants (
    grant_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class FoundToken:
    grant_id: str
    client_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StoredToken:
    """A token's whole record, for revocation and introspection."""

    kind: str
    grant_id: str
    client_id: str
    data: dict[str, Any]
    expires_at: float
    issued_at: float | None  # None for tokens saved before the column existed
    state: int


@dataclass(frozen=True)
class NewToken:
    token: str
    kind: str
    data: dict[str, Any]
    ttl: float


class _Refused(Exception):
    """Rolls a transaction back."""


class GrantStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        conn = self.db.connect()
        conn.executescript(SCHEMA)
        # `tokens.issued_at` (introspection's `iat`), added after the first release
        add_columns(conn, "tokens", {"issued_at": "REAL"})

    # -- codes ----------------------------------------------------------------------------------

    def save_code(self, code: str, grant_id: str, data: dict[str, Any], ttl: float) -> None:
        self.db.connect().execute(
            "INSERT INTO codes (code_hash, grant_id, data, expires_at) VALUES (?, ?, ?, ?)",
            (digest(code), grant_id, json.dumps(data), time.time() + ttl))

    def find_code(self, code: str) -> tuple[str, dict[str, Any], bool] | None:
        """(grant id, data, already used) of an unexpired code."""
        row = self.db.connect().execute(
            "SELECT grant_id, data, expires_at, used_at FROM codes WHERE code_hash = ?",
            (digest(code),)).fetchone()
        if row is None or row[2] < time.time():
            return None
        return row[0], json.loads(row[1]), row[3] is not None

    def redeem_code(self, code: str, grant_id: str, client_id: str,
                    new: list[NewToken]) -> bool:
        """Mark the code used and save the tokens it buys, all or nothing; True for exactly
        one caller. A concurrent second use therefore always finds the tokens to revoke."""
        conn = self.db.connect()
        now = time.time()
        try:
            with write_transaction(conn):
                cursor = conn.execute(
                    "UPDATE codes SET used_at = ? WHERE code_hash = ? AND grant_id = ? "
                    "AND used_at IS NULL AND expires_at >= ?", (now, digest(code), grant_id, now))
                if cursor.rowcount != 1:
                    raise _Refused
                for token in new:
                    if not self._insert(conn, token, grant_id, client_id):
                        raise _Refused
        except _Refused:
            return False
        return True

    # -- tokens ---------------------------------------------------------------------------------

    def save_token(self, token: str, kind: str, grant_id: str, client_id: str,
                   data: dict[str, Any], ttl: float) -> bool:
        """Save a live token; False (nothing saved) when its grant was revoked meanwhile."""
        return self._insert(self.db.connect(), NewToken(token, kind, data, ttl), grant_id,
                            client_id)

    @staticmethod
    def _insert(conn: sqlite3.Connection, new: NewToken, grant_id: str, client_id: str) -> bool:
        now = time.time()
        cursor = conn.execute(
            "INSERT INTO tokens (token_hash, kind, grant_id, client_id, data, expires_at, "
            "issued_at) SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM revoked_grants WHERE grant_id = ?)",
            (digest(new.token), new.kind, grant_id, client_id, json.dumps(new.data),
             now + new.ttl, now, grant_id))
        return cursor.rowcount == 1

    def active_token(self, token: str, kind: str) -> tuple[str, str, dict[str, Any]] | None:
        """(grant id, client id, data) of a live, unexpired token of this kind."""
        row = self.db.connect().execute(
            "SELECT grant_id, client_id, data FROM tokens WHERE token_hash = ? AND kind = ? "
            "AND revoked = ? AND expires_at >= ?",
            (digest(token), kind, LIVE, time.time())).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def find_token(self, token: str, kind: str) -> FoundToken | None:
        """An unexpired token that is live or was rotated (so that presenting it again can be
        detected); None when unknown, expired or revoked."""
        row = self.db.connect().execute(
            "SELECT grant_id, client_id, data FROM tokens WHERE token_hash = ? "
            "AND kind = ? AND revoked IN (?, ?) AND expires_at >= ?",
            (digest(token), kind, LIVE, ROTATED, time.time())).fetchone()
        if row is None:
            return None
        return FoundToken(row[0], row[1], json.loads(row[2]))

    def record(self, token: str, with_rotated: bool = False) -> StoredToken | None:
        """The unexpired token of any kind (a hash names one token only), if it is live (or
        also rotated, `with_rotated`); None when unknown, expired or revoked."""
        states = (LIVE, ROTATED) if with_rotated else (LIVE,)
        row = self.db.connect().execute(
            "SELECT kind, grant_id, client_id, data, expires_at, issued_at, revoked FROM tokens "
            f"WHERE token_hash = ? AND revoked IN ({', '.join('?' * len(states))}) "
            "AND expires_at >= ?", (digest(token), *states, time.time())).fetchone()
        if row is None:
            return None
        return StoredToken(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])

    def revoke_token(self, token: str, client_id: str) -> bool:
        """Revoke one live token of this client (an access token: its grant lives on);
        False when there was none."""
        cursor = self.db.connect().execute(
            "UPDATE tokens SET revoked = ? WHERE token_hash = ? AND client_id = ? "
            "AND revoked = ?", (REVOKED, digest(token), client_id, LIVE))
        return cursor.rowcount == 1

    def rotate(self, old: str, kind: str, grant_id: str, client_id: str,
               new: list[NewToken]) -> bool:
        """Mark `old` rotated and save `new`, all or nothing; True for exactly one caller
        (False: `old` is no longer live, nothing changed)."""
        conn = self.db.connect()
        try:
            with write_transaction(conn):
                cursor = conn.execute(
                    "UPDATE tokens SET revoked = ? WHERE token_hash = ? AND kind = ? "
                    "AND grant_id = ? AND revoked = ? AND expires_at >= ?",
                    (ROTATED, digest(old), kind, grant_id, LIVE, time.time()))
                if cursor.rowcount != 1:
                    raise _Refused
                for token in new:
                    if not self._insert(conn, token, grant_id, client_id):
                        raise _Refused  # the grant is revoked: roll the rotation back too
        except _Refused:
            return False
        return True

    def revoke_grant(self, grant_id: str) -> int:
        """Revoke every live token of the grant, and refuse tokens saved for it later;
        the number of tokens revoked."""
        conn = self.db.connect()
        now = time.time()
        with write_transaction(conn):
            conn.execute("DELETE FROM revoked_grants WHERE expires_at < ?", (now,))
            conn.execute("INSERT OR REPLACE INTO revoked_grants (grant_id, expires_at) "
                         "VALUES (?, ?)", (grant_id, now + REVOKED_GRANT_TTL))
            cursor = conn.execute("UPDATE tokens SET revoked = ? WHERE grant_id = ? "
                                  "AND revoked = ?", (REVOKED, grant_id, LIVE))
        return cursor.rowcount

    def purge(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired codes and as many expired tokens (bounded work); how
        many rows went. Codes are kept an hour past expiry, as before."""
        now = time.time()
        conn = self.db.connect()
        codes = conn.execute(
            "DELETE FROM codes WHERE rowid IN "
            "(SELECT rowid FROM codes WHERE expires_at < ? LIMIT ?)", (now - 3600, limit))
        tokens = conn.execute(
            "DELETE FROM tokens WHERE rowid IN "
            "(SELECT rowid FROM tokens WHERE expires_at < ? LIMIT ?)", (now, limit))
        return codes.rowcount + tokens.rowcount

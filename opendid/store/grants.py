"""Authorization codes and issued tokens, stored by hash; one grant id ties them together.

A code is redeemed with one atomic UPDATE; a second redemption revokes every token its grant
issued (RFC 6749 §4.1.2). Refresh tokens rotate and are consumed the same way.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from opendid.store.db import Database


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class GrantStore:
    def __init__(self, db: Database) -> None:
        self.db = db

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

    def use_code(self, code: str) -> bool:
        """Mark the code used; True for exactly one caller."""
        cursor = self.db.connect().execute(
            "UPDATE codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL "
            "AND expires_at >= ?", (time.time(), digest(code), time.time()))
        return cursor.rowcount == 1

    # -- tokens ---------------------------------------------------------------------------------

    def save_token(self, token: str, kind: str, grant_id: str, client_id: str,
                   data: dict[str, Any], ttl: float) -> None:
        self.db.connect().execute(
            "INSERT INTO tokens (token_hash, kind, grant_id, client_id, data, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (digest(token), kind, grant_id, client_id, json.dumps(data), time.time() + ttl))

    def active_token(self, token: str, kind: str) -> tuple[str, str, dict[str, Any]] | None:
        """(grant id, client id, data) of an unrevoked, unexpired token of this kind."""
        row = self.db.connect().execute(
            "SELECT grant_id, client_id, data FROM tokens WHERE token_hash = ? AND kind = ? "
            "AND revoked = 0 AND expires_at >= ?", (digest(token), kind, time.time())).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def consume_token(self, token: str, kind: str) -> bool:
        """Revoke one token (refresh rotation); True for exactly one caller."""
        cursor = self.db.connect().execute(
            "UPDATE tokens SET revoked = 1 WHERE token_hash = ? AND kind = ? AND revoked = 0 "
            "AND expires_at >= ?", (digest(token), kind, time.time()))
        return cursor.rowcount == 1

    def revoke_grant(self, grant_id: str) -> int:
        cursor = self.db.connect().execute(
            "UPDATE tokens SET revoked = 1 WHERE grant_id = ?", (grant_id,))
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

"""Things usable once (challenges, DID-login tokens), consumed atomically.

`take` is a single `DELETE … RETURNING`, so of two racing requests exactly one gets the value.
A value put with an `owner` (a login id) replaces that owner's previous value of the same kind,
so a client asking again and again for a challenge holds one row, not one per request.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opendid.store.db import Database


class OneTimeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, kind: str, key: str, value: Any, ttl: float, owner: str | None = None) -> None:
        """Store `value` under (kind, key); with an owner, the owner's older value of this kind
        is dropped in the same statement (REPLACE also resolves the (kind, owner) index)."""
        self.db.connect().execute(
            "INSERT OR REPLACE INTO one_time (kind, key, value, expires_at, owner) "
            "VALUES (?, ?, ?, ?, ?)",
            (kind, key, json.dumps(value), time.time() + ttl, owner))

    def take(self, kind: str, key: str) -> Any | None:
        """Remove and return the value, or None if absent, expired or already taken."""
        row = self.db.connect().execute(
            "DELETE FROM one_time WHERE kind = ? AND key = ? RETURNING value, expires_at",
            (kind, key)).fetchone()
        if row is None or row[1] < time.time():
            return None
        return json.loads(row[0])

    def peek(self, kind: str, key: str) -> Any | None:
        row = self.db.connect().execute(
            "SELECT value, expires_at FROM one_time WHERE kind = ? AND key = ?",
            (kind, key)).fetchone()
        if row is None or row[1] < time.time():
            return None
        return json.loads(row[0])

    def remember(self, kind: str, key: str, ttl: float) -> bool:
        """Record `key` as used; False if it was used before (replay). One statement: an
        expired record (not yet purged) is renewed, a live one is a replay."""
        now = time.time()
        cursor = self.db.connect().execute(
            "INSERT INTO one_time (kind, key, value, expires_at) VALUES (?, ?, 'null', ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
            "expires_at = excluded.expires_at, owner = NULL WHERE one_time.expires_at < ?",
            (kind, key, now + ttl, now))
        return cursor.rowcount == 1

    def purge(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired values (bounded work); how many went."""
        cursor = self.db.connect().execute(
            "DELETE FROM one_time WHERE rowid IN "
            "(SELECT rowid FROM one_time WHERE expires_at < ? LIMIT ?)", (time.time(), limit))
        return cursor.rowcount

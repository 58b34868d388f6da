"""Things usable once (challenges, DID-login tokens), consumed atomically.

`take` is a single `DELETE … RETURNING`, so of two racing requests exactly one gets the value.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from opendid.store.db import Database


class OneTimeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, kind: str, key: str, value: Any, ttl: float) -> None:
        self.db.connect().execute(
            "INSERT OR REPLACE INTO one_time (kind, key, value, expires_at) VALUES (?, ?, ?, ?)",
            (kind, key, json.dumps(value), time.time() + ttl))

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
        """Record `key` as used; False if it was used before (replay)."""
        self.purge()
        try:
            self.db.connect().execute(
                "INSERT INTO one_time (kind, key, value, expires_at) VALUES (?, ?, 'null', ?)",
                (kind, key, time.time() + ttl))
        except sqlite3.IntegrityError:
            return False
        return True

    def purge(self) -> None:
        self.db.connect().execute("DELETE FROM one_time WHERE expires_at < ?", (time.time(),))

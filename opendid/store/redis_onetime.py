"""One-time values in Redis, for several OpenDID instances sharing one state store.

The same guarantees as the SQLite `OneTimeStore`: `take` is one GETDEL, so of two racing
requests (on any instance) exactly one gets the value; `remember` is one SET NX; an owner's new
value replaces its previous one in one Lua script. Expiry is Redis's TTL: nothing to purge.
"""

from __future__ import annotations

import json
import math
from typing import Any

from redis import Redis

# KEYS[1]: the value's key, KEYS[2]: the owner's index key; ARGV[1]: value, ARGV[2]: ttl in ms
PUT_OWNED = """
local previous = redis.call('GET', KEYS[2])
if previous and previous ~= KEYS[1] then redis.call('DEL', previous) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[2])
return 1
"""


def ttl_ms(seconds: float) -> int:
    """A TTL for PX: whole milliseconds, at least one (0 would be an error, not "expired")."""
    return max(1, math.ceil(seconds * 1000))


class RedisOneTimeStore:
    def __init__(self, client: Redis, prefix: str = "opendid:") -> None:
        self.client = client
        self.prefix = prefix
        self._put_owned = client.register_script(PUT_OWNED)

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}once:{kind}:{key}"

    def put(self, kind: str, key: str, value: Any, ttl: float, owner: str | None = None) -> None:
        """Store `value` under (kind, key); with an owner, the owner's older value of this kind
        is dropped atomically."""
        data = json.dumps(value)
        if owner is None:
            self.client.set(self._key(kind, key), data, px=ttl_ms(ttl))
            return
        self._put_owned(keys=[self._key(kind, key), f"{self.prefix}owner:{kind}:{owner}"],
                        args=[data, ttl_ms(ttl)])

    def take(self, kind: str, key: str) -> Any | None:
        """Remove and return the value, or None if absent, expired or already taken."""
        raw = self.client.getdel(self._key(kind, key))
        return None if raw is None else json.loads(raw)

    def peek(self, kind: str, key: str) -> Any | None:
        raw = self.client.get(self._key(kind, key))
        return None if raw is None else json.loads(raw)

    def remember(self, kind: str, key: str, ttl: float) -> bool:
        """Record `key` as used; False if it was used before (replay)."""
        return bool(self.client.set(self._key(kind, key), "null", nx=True, px=ttl_ms(ttl)))

    def purge(self, limit: int = 1000) -> int:
        """Nothing to do: Redis expires values itself."""
        return 0

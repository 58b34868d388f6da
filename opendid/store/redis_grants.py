"""Codes and tokens in Redis, for several OpenDID instances sharing one state store.

The same rules as the SQLite `GrantStore`, each check-and-write one Lua script (Redis runs a
script atomically): a code is redeemed once and its tokens saved with it; a refresh token is
rotated once; a revoked grant's tokens are revoked and the grant is remembered for an hour so no
token is saved live for it afterwards. Expiry is Redis's TTL, with the expiry time also kept in
the record so that a value is dead at the same instant on every instance; codes are kept an
hour past expiry, so a late second use is still detected.

Keys (under the prefix): `code:<sha256>` and `token:<sha256>` hashes, `grant:<id>` the set of a
grant's token digests, `revoked:<grant id>`. A token's `state` is grants.py's LIVE (0),
REVOKED (1) or ROTATED (2).
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis

from opendid.store.grants import (
    LIVE,
    REVOKED_GRANT_TTL,
    ROTATED,
    FoundToken,
    NewToken,
    StoredToken,
    digest,
)
from opendid.store.redis_onetime import ttl_ms

CODE_KEPT = 3600.0  # seconds a code is kept past its expiry (a second use is still detected)

# Saves the tokens given in ARGV from position `first` on (5 values each: digest, kind, data,
# expires_at, ttl ms) for grant `grant`/client `client`, unless the grant is revoked.
INSERT = """
local function revoked(prefix, grant)
  return redis.call('EXISTS', prefix .. 'revoked:' .. grant) == 1
end
local function insert(prefix, grant, client, first)
  for i = first, #ARGV, 5 do
    local key = prefix .. 'token:' .. ARGV[i]
    redis.call('HSET', key, 'kind', ARGV[i + 1], 'grant', grant, 'client', client,
               'data', ARGV[i + 2], 'expires_at', ARGV[i + 3], 'issued_at', ARGV[4],
               'state', '0')
    redis.call('PEXPIRE', key, ARGV[i + 4])
    local index = prefix .. 'grant:' .. grant
    redis.call('SADD', index, ARGV[i])
    if redis.call('PTTL', index) < tonumber(ARGV[i + 4]) then
      redis.call('PEXPIRE', index, ARGV[i + 4])
    end
  end
end
"""

# ARGV: prefix, grant, client, now, then tokens
SAVE = INSERT + """
if revoked(ARGV[1], ARGV[2]) then return 0 end
insert(ARGV[1], ARGV[2], ARGV[3], 5)
return 1
"""

# KEYS[1]: the code; ARGV: prefix, grant, client, now, then tokens
REDEEM = INSERT + """
local found = redis.call('HMGET', KEYS[1], 'grant', 'expires_at', 'used')
if not found[1] or found[1] ~= ARGV[2] or found[3] ~= '0' then return 0 end
if tonumber(found[2]) < tonumber(ARGV[4]) then return 0 end
if revoked(ARGV[1], ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[4])
insert(ARGV[1], ARGV[2], ARGV[3], 5)
return 1
"""

# KEYS[1]: the old token; ARGV: prefix, grant, client, now, kind, then tokens
ROTATE = INSERT + """
local found = redis.call('HMGET', KEYS[1], 'kind', 'grant', 'state', 'expires_at')
if not found[1] or found[1] ~= ARGV[5] or found[2] ~= ARGV[2] or found[3] ~= '0' then
  return 0
end
if tonumber(found[4]) < tonumber(ARGV[4]) then return 0 end
if revoked(ARGV[1], ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', '2')
insert(ARGV[1], ARGV[2], ARGV[3], 6)
return 1
"""

# KEYS[1]: the token; ARGV: its client
REVOKE_TOKEN = """
local found = redis.call('HMGET', KEYS[1], 'client', 'state')
if found[1] ~= ARGV[1] or found[2] ~= '0' then return 0 end
redis.call('HSET', KEYS[1], 'state', '1')
return 1
"""

# ARGV: prefix, grant, ttl ms of the revocation record
REVOKE_GRANT = """
redis.call('SET', ARGV[1] .. 'revoked:' .. ARGV[2], '1', 'PX', ARGV[3])
local count = 0
for _, token in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'grant:' .. ARGV[2])) do
  local key = ARGV[1] .. 'token:' .. token
  if redis.call('HGET', key, 'state') == '0' then
    redis.call('HSET', key, 'state', '1')
    count = count + 1
  end
end
return count
"""


class RedisGrantStore:
    def __init__(self, client: Redis, prefix: str = "opendid:") -> None:
        self.client = client
        self.prefix = prefix
        self._save = client.register_script(SAVE)
        self._redeem = client.register_script(REDEEM)
        self._rotate = client.register_script(ROTATE)
        self._revoke_grant = client.register_script(REVOKE_GRANT)
        self._revoke_token = client.register_script(REVOKE_TOKEN)

    def _code_key(self, code: str) -> str:
        return f"{self.prefix}code:{digest(code)}"

    def _token_key(self, token: str) -> str:
        return f"{self.prefix}token:{digest(token)}"

    @staticmethod
    def _token_args(new: list[NewToken]) -> list[Any]:
        now, args = time.time(), []
        for token in new:
            args += [digest(token.token), token.kind, json.dumps(token.data), now + token.ttl,
                     ttl_ms(token.ttl)]
        return args

    # -- codes ----------------------------------------------------------------------------------

    def save_code(self, code: str, grant_id: str, data: dict[str, Any], ttl: float) -> None:
        key = self._code_key(code)
        with self.client.pipeline() as pipe:  # MULTI/EXEC: the record never lacks its TTL
            pipe.hset(key, mapping={"grant": grant_id, "data": json.dumps(data),
                                    "expires_at": time.time() + ttl, "used": "0"})
            pipe.pexpire(key, ttl_ms(ttl + CODE_KEPT))
            pipe.execute()

    def find_code(self, code: str) -> tuple[str, dict[str, Any], bool] | None:
        """(grant id, data, already used) of an unexpired code."""
        grant, data, expires_at, used = self.client.hmget(
            self._code_key(code), ["grant", "data", "expires_at", "used"])
        if grant is None or float(expires_at) < time.time():
            return None
        return grant.decode(), json.loads(data), used != b"0"

    def redeem_code(self, code: str, grant_id: str, client_id: str,
                    new: list[NewToken]) -> bool:
        """Mark the code used and save the tokens it buys, all or nothing; True for exactly
        one caller."""
        return bool(self._redeem(keys=[self._code_key(code)], args=[
            self.prefix, grant_id, client_id, time.time(), *self._token_args(new)]))

    # -- tokens ---------------------------------------------------------------------------------

    def save_token(self, token: str, kind: str, grant_id: str, client_id: str,
                   data: dict[str, Any], ttl: float) -> bool:
        """Save a live token; False (nothing saved) when its grant was revoked meanwhile."""
        return bool(self._save(args=[self.prefix, grant_id, client_id, time.time(),
                                     *self._token_args([NewToken(token, kind, data, ttl)])]))

    def _find(self, token: str, kind: str, states: tuple[int, ...]) -> FoundToken | None:
        found_kind, grant, client, data, expires_at, state = self.client.hmget(
            self._token_key(token), ["kind", "grant", "client", "data", "expires_at", "state"])
        if found_kind is None or found_kind.decode() != kind or int(state) not in states:
            return None
        if float(expires_at) < time.time():
            return None
        return FoundToken(grant.decode(), client.decode(), json.loads(data))

    def active_token(self, token: str, kind: str) -> tuple[str, str, dict[str, Any]] | None:
        """(grant id, client id, data) of a live, unexpired token of this kind."""
        found = self._find(token, kind, (LIVE,))
        return None if found is None else (found.grant_id, found.client_id, found.data)

    def find_token(self, token: str, kind: str) -> FoundToken | None:
        """An unexpired token that is live or was rotated (so that presenting it again can be
        detected); None when unknown, expired or revoked."""
        return self._find(token, kind, (LIVE, ROTATED))

    def record(self, token: str, with_rotated: bool = False) -> StoredToken | None:
        """The unexpired token of any kind, if it is live (or also rotated, `with_rotated`);
        None when unknown, expired or revoked."""
        kind, grant, client, data, expires_at, issued_at, state = self.client.hmget(
            self._token_key(token),
            ["kind", "grant", "client", "data", "expires_at", "issued_at", "state"])
        if kind is None or int(state) not in ((LIVE, ROTATED) if with_rotated else (LIVE,)):
            return None
        if float(expires_at) < time.time():
            return None
        return StoredToken(kind.decode(), grant.decode(), client.decode(), json.loads(data),
                           float(expires_at), float(issued_at), int(state))

    def revoke_token(self, token: str, client_id: str) -> bool:
        """Revoke one live token of this client (its grant lives on); False when none."""
        return bool(self._revoke_token(keys=[self._token_key(token)], args=[client_id]))

    def rotate(self, old: str, kind: str, grant_id: str, client_id: str,
               new: list[NewToken]) -> bool:
        """Mark `old` rotated and save `new`, all or nothing; True for exactly one caller."""
        return bool(self._rotate(keys=[self._token_key(old)], args=[
            self.prefix, grant_id, client_id, time.time(), kind, *self._token_args(new)]))

    def revoke_grant(self, grant_id: str) -> int:
        """Revoke every live token of the grant, and refuse tokens saved for it later;
        the number of tokens revoked."""
        return int(self._revoke_grant(args=[self.prefix, grant_id,
                                            ttl_ms(REVOKED_GRANT_TTL)]))

    def purge(self, limit: int = 1000) -> int:
        """Nothing to do: Redis expires codes and tokens itself."""
        return 0


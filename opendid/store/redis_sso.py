"""The provider's login sessions (single sign-on) in Redis, for several instances.

The same rules as the SQLite `SsoStore`: only the SHA-256 of the cookie value is a key; each
wallet login takes the previous session over atomically (GETDEL: of two racing requests one
gets it) and writes a new one under a new id; logout is one GETDEL. A session expires at
`auth_time + lifetime` (PXAT), never extended by reuse.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from redis import Redis

from opendid.login.identity import Identity
from opendid.store.sso import Satisfied, SsoSession, session_key


class RedisSsoStore:
    def __init__(self, client: Redis, prefix: str = "opendid:") -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, session_id: str | None) -> str | None:
        key = session_key(session_id) if session_id else None
        return None if key is None else f"{self.prefix}sso:{key}"

    @staticmethod
    def _session(raw: bytes | None, with_satisfied: bool = True) -> SsoSession | None:
        if raw is None:
            return None
        data = json.loads(raw)
        if data["expires_at"] <= time.time():
            return None
        satisfied = tuple(Satisfied.from_dict(s) for s in data["satisfied"]) \
            if with_satisfied else ()
        return SsoSession(data["did"], data.get("web3name"), int(data["auth_time"]),
                          float(data["expires_at"]), satisfied)

    def find(self, session_id: str | None) -> SsoSession | None:
        """The live session behind a cookie value; None when absent, unknown or expired."""
        key = self._key(session_id)
        return None if key is None else self._session(self.client.get(key))

    def login(self, previous_id: str | None, client_id: str, fingerprint: str,
              identity: Identity, lifetime: int) -> str:
        """Record a completed wallet login; returns the new session id for the cookie. The
        previous session's satisfied requirements are kept for the same DID only."""
        new_id = secrets.token_urlsafe(32)
        old_key = self._key(previous_id)
        kept: list[dict[str, Any]] = []
        previous = self._session(self.client.getdel(old_key)) if old_key else None
        if previous is not None and previous.did == identity.did:
            kept = [s.to_dict() for s in previous.satisfied if s.fingerprint != fingerprint]
        expires_at = identity.auth_time + lifetime
        data = {"did": identity.did, "web3name": identity.web3name,
                "auth_time": identity.auth_time, "expires_at": expires_at,
                "satisfied": [*kept, Satisfied(client_id, fingerprint, identity).to_dict()]}
        new_key = self._key(new_id)
        assert new_key is not None
        self.client.set(new_key, json.dumps(data), pxat=int(expires_at * 1000))
        return new_id

    def end(self, session_id: str | None) -> SsoSession | None:
        """Delete the session (logout); the ended session, or None if there was none. Of two
        racing logouts one gets the session, the other None."""
        key = self._key(session_id)
        return None if key is None else self._session(self.client.getdel(key), False)

    def purge(self, limit: int = 1000) -> int:
        """Nothing to do: Redis expires sessions itself."""
        return 0

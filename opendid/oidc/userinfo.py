"""The userinfo endpoint's answer for an access token."""

from __future__ import annotations

from typing import Any

from opendid.login.identity import Identity
from opendid.store.grants import GrantStore


class UserInfo:
    def __init__(self, grants: GrantStore) -> None:
        self.grants = grants

    def claims(self, access_token: str) -> dict[str, Any] | None:
        """The claims for a live access token; None when it is not one."""
        found = self.grants.active_token(access_token, "access")
        if found is None:
            return None
        identity = Identity.from_dict(found[2]["identity"])
        return {"sub": identity.did, "w3n": identity.web3name or "", "pro": identity.properties}

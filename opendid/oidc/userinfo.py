"""The userinfo endpoint's answer for an access token; a token whose credential is no longer
attested on chain is refused (and its grant ends)."""

from __future__ import annotations

from typing import Any

from opendid.login.identity import Identity
from opendid.login.revalidation import CredentialCheck
from opendid.store.grants import GrantStore


class UserInfo:
    def __init__(self, grants: GrantStore, credentials: CredentialCheck) -> None:
        self.grants = grants
        self.credentials = credentials

    def claims(self, access_token: str) -> dict[str, Any] | None:
        """The claims for a live access token; None when it is not one."""
        found = self.grants.active_token(access_token, "access")
        if found is None:
            return None
        identity = Identity.from_dict(found[2]["identity"])
        if not self.credentials.still_valid(identity):
            self.grants.revoke_grant(found[0])
            return None
        return {"sub": identity.did, "w3n": identity.web3name or "", "pro": identity.properties}

"""The userinfo endpoint's answer for an access token: who (`sub`), OpenDID's `w3n` and `pro`,
and the standard claims the token's scopes release (`claims.py`); a token whose credential is
no longer attested on chain is refused (and its grant ends)."""

from __future__ import annotations

from typing import Any

from opendid.config import Config
from opendid.login.identity import Identity
from opendid.login.revalidation import CredentialCheck
from opendid.oidc.claims import client_claims
from opendid.store.clients import ClientStore
from opendid.store.grants import GrantStore


class UserInfo:
    def __init__(self, grants: GrantStore, clients: ClientStore, config: Config,
                 credentials: CredentialCheck) -> None:
        self.grants, self.clients, self.config = grants, clients, config
        self.credentials = credentials

    def claims(self, access_token: str) -> dict[str, Any] | None:
        """The claims for a live access token; None when it is not one (or its client has been
        removed since: its claim map and requirements are gone with it)."""
        found = self.grants.active_token(access_token, "access")
        if found is None:
            return None
        grant_id, client_id, data = found
        client = self.clients.get(client_id)
        if client is None:
            return None
        identity = Identity.from_dict(data["identity"])
        if not self.credentials.still_valid(identity):
            self.grants.revoke_grant(grant_id)
            return None
        return {"sub": identity.did, "w3n": identity.web3name or "", "pro": identity.properties,
                **client_claims(client, identity, data.get("scope"), self.config.claimMap)}

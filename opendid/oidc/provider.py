"""The OpenID provider: finishing a login as the authorization request asked.

The result (a code, or implicit tokens) follows OpenDID's contract: redirects with the
parameters the original's front ends expect. Validating requests is `authorize.py`; the token
endpoint (authlib's grants, refresh rotation) is `token_endpoint.py`; userinfo `userinfo.py`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from opendid.config import Config
from opendid.login.identity import Identity
from opendid.oidc.authorize import AuthorizeError, AuthRequest, error_response
from opendid.oidc.results import FRAGMENT, QUERY, AuthResponse
from opendid.oidc.token_endpoint import TokenEndpoint, token_data
from opendid.oidc.tokens import TokenService
from opendid.store.clients import ClientRecord, ClientStore
from opendid.store.grants import GrantStore

log = logging.getLogger(__name__)

CODE_LIFETIME = 60


class Provider:
    def __init__(self, config: Config, clients: ClientStore, grants: GrantStore,
                 tokens: TokenService) -> None:
        self.config, self.clients, self.grants, self.tokens = config, clients, grants, tokens

    def client_for(self, request: AuthRequest) -> ClientRecord:
        client = self.clients.get(request.client_id)
        if client is None:
            raise AuthorizeError("invalid_request", "Invalid client_id", False)
        return client

    def cancel(self, request: AuthRequest) -> AuthResponse:
        """Where to send the user who gives up: the client's redirect URI with access_denied."""
        return error_response(self.client_for(request), request.redirect_uri,
                              request.response_type, request.state, "access_denied",
                              "The user cancelled the login", request.response_mode)

    def complete(self, request: AuthRequest, client: ClientRecord,
                 identity: Identity) -> AuthResponse:
        """Finish a login: the code or the implicit tokens for the client."""
        grant_id = uuid.uuid4().hex
        if request.response_type == "code":
            code = uuid.uuid4().hex + uuid.uuid4().hex
            self.grants.save_code(code, grant_id, {
                **request.to_dict(), "identity": identity.to_dict(),
            }, CODE_LIFETIME)
            log.info("issued code to %s for %s", client.client_id, identity.did)
            return AuthResponse(request.redirect_uri, {"code": code, "state": request.state},
                                FRAGMENT if request.response_mode == FRAGMENT else QUERY)
        return AuthResponse(request.redirect_uri,
                            self._implicit(client, request, identity, grant_id), FRAGMENT)

    def _implicit(self, client: ClientRecord, request: AuthRequest, identity: Identity,
                  grant_id: str) -> dict[str, Any]:
        want_access = request.response_type == "id_token token"
        access = self.tokens.access_token(client, identity, request.scope) if want_access else None
        if access:
            self._store(access.token, "access", grant_id, client, identity, access.lifetime,
                        request.scope)
        id_token = self.tokens.id_token(client, identity, request.nonce,
                                        access.token if access else None, scope=request.scope)
        log.info("implicit login of %s for %s", identity.did, client.client_id)
        if client.is_standard:
            params: dict[str, Any] = {"id_token": id_token}
            if access:
                params.update(access_token=access.token, token_type="bearer",
                              expires_in=access.lifetime)
            params["state"] = request.state
            return params
        refresh = self.tokens.refresh_token(client, identity, request.scope)
        self._store(refresh.token, "refresh", grant_id, client, identity, refresh.lifetime,
                    request.scope)
        params = {"id_token": id_token}
        if access:
            params["access_token"] = access.token
        params.update(refresh_token=refresh.token, state=request.state, token_type="bearer")
        return params

    def _store(self, token: str, kind: str, grant_id: str, client: ClientRecord,
               identity: Identity, lifetime: int, scope: str | None) -> None:
        """Save a token of a new (implicit) grant."""
        self.grants.save_token(token, kind, grant_id, client.client_id,
                               token_data(identity, scope), lifetime)


__all__ = ["CODE_LIFETIME", "Provider", "TokenEndpoint"]

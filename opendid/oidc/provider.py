"""The OpenID provider: finishing a login as the authorization request asked.

The result (a code, or implicit tokens) follows OpenDID's contract: redirects with the
parameters the original's front ends expect; standard clients also get the issuer (RFC 9207).
Validating requests is `authorize.py`; the token endpoint (authlib's grants, refresh rotation)
is `token_endpoint.py`; userinfo `userinfo.py`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from opendid.config import Config
from opendid.login.identity import Identity
from opendid.oidc.authorize import AuthorizeError, AuthRequest, error_response
from opendid.oidc.results import FORM_POST, FRAGMENT, QUERY, AuthResponse, with_issuer
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

    def issuer_for(self, client: ClientRecord) -> str | None:
        """The `iss` of a client's authorization responses (RFC 9207): standard clients only;
        OpenDID-style clients keep the original's parameters."""
        return self.config.oidc_issuer if client.is_standard else None

    def error(self, request: AuthRequest, error: str, description: str) -> AuthResponse:
        """An error for a validated request, in its response mode, with `iss` where due."""
        return error_response(self.client_for(request), request.redirect_uri,
                              request.response_type, request.state, error, description,
                              request.response_mode, issuer=self.config.oidc_issuer)

    def cancel(self, request: AuthRequest) -> AuthResponse:
        """Where to send the user who gives up: the client's redirect URI with access_denied."""
        return self.error(request, "access_denied", "The user cancelled the login")

    def complete(self, request: AuthRequest, client: ClientRecord,
                 identity: Identity) -> AuthResponse:
        """Finish a login: the code or the implicit tokens for the client."""
        grant_id = uuid.uuid4().hex
        if request.response_type == "code":
            code = uuid.uuid4().hex + uuid.uuid4().hex
            self.grants.save_code(code, grant_id, {
                **request.to_dict(), "identity": identity.to_dict(),
            }, CODE_LIFETIME)
            log.debug("issued code to %s for %s", client.client_id, identity.did)
            params: dict[str, Any] = {"code": code, "state": request.state}
            default = QUERY
        else:
            params = self._implicit(client, request, identity, grant_id)
            default = FRAGMENT  # tokens never go in a query
        # validate_authorize allowed only the modes this response type may use
        honoured = request.response_mode in (FRAGMENT, FORM_POST)
        mode = str(request.response_mode) if honoured else default
        return AuthResponse(request.redirect_uri,
                            with_issuer(params, self.issuer_for(client)), mode)

    def _implicit(self, client: ClientRecord, request: AuthRequest, identity: Identity,
                  grant_id: str) -> dict[str, Any]:
        want_access = request.response_type == "id_token token"
        access = self.tokens.access_token(client, identity, request.scope) if want_access else None
        if access:
            self._store(access.token, "access", grant_id, client, identity, access.lifetime,
                        request.scope)
        id_token = self.tokens.id_token(client, identity, request.nonce,
                                        access.token if access else None, scope=request.scope)
        log.debug("implicit login of %s for %s", identity.did, client.client_id)
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

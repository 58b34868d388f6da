"""The token endpoint: authlib's grants (code + PKCE, refresh) over our stores, and OpenDID's
unauthenticated `/api/v1/refresh`.

Refresh tokens rotate at both refresh endpoints: `/token` (`grant_type=refresh_token`, client
authentication as RFC 6749 §6 requires for confidential clients) and OpenDID's
`/api/v1/refresh` (no client authentication: kept for OpenDID-style clients' tokens only, since
existing integrations use it). Presenting a rotated refresh token again is a reuse (RFC 9700
§4.14.2): the whole grant is revoked. Of two racing presentations of one token, exactly one
rotates it; the other is a reuse, so the winner's new tokens are revoked as well.

Both refresh endpoints re-check the credential behind a grant on chain (`CredentialCheck`): once
its attestation is revoked, the refresh is refused (`invalid_grant`, or OpenDID's 401) and the
grant ends.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask

from opendid.config import Config
from opendid.login.identity import Identity
from opendid.login.revalidation import CredentialCheck
from opendid.oidc.tokens import TokenService
from opendid.store.clients import ClientRecord, ClientStore, client_secret_matches
from opendid.store.grants import GrantStore, NewToken

log = logging.getLogger(__name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


# -- authlib models --------------------------------------------------------------------------


class Client(ClientMixin):
    def __init__(self, record: ClientRecord) -> None:
        self.record = record
        self.client_id = record.client_id

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> str:
        return self.record.redirect_urls[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.record.redirect_urls

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret_matches(self.record.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.record.client_secret:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.record.allowed_response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class GrantUser:
    """authlib's "user": the identity, plus the grant it belongs to."""

    identity: Identity
    grant_id: str
    nonce: str | None = None
    code: str | None = None
    data: dict[str, Any] | None = None


class StoredCode(AuthorizationCodeMixin):
    def __init__(self, code: str, grant_id: str, data: dict[str, Any]) -> None:
        self.code, self.grant_id, self.data = code, grant_id, data

    def get_redirect_uri(self) -> str:
        return str(self.data["redirect_uri"])

    def get_scope(self) -> str:
        return str(self.data.get("scope") or "")

    def get_nonce(self) -> str | None:
        return self.data.get("nonce")

    def get_auth_time(self) -> int:
        return int(self.data["identity"].get("auth_time") or 0)

    @property
    def code_challenge(self) -> str | None:
        return self.data.get("code_challenge")

    @property
    def code_challenge_method(self) -> str | None:
        return self.data.get("code_challenge_method")


class StoredRefresh:
    """A refresh token that is live or was already rotated: which one, only the atomic
    rotation tells (`TokenEndpoint._rotate`); failing it means the token was presented again."""

    def __init__(self, token: str, grant_id: str, client_id: str, data: dict[str, Any]) -> None:
        self.token, self.grant_id, self.client_id, self.data = token, grant_id, client_id, data

    def check_client(self, client: Client) -> bool:
        return hmac.compare_digest(client.client_id, self.client_id)

    def get_scope(self) -> str:
        return str(self.data.get("scope") or "")


def token_data(identity: Identity, scope: str | None) -> dict[str, Any]:
    """What a stored token remembers of its grant."""
    return {"identity": identity.to_dict(), "scope": scope}


def authenticate_client_secret_basic(query_client: Any, request: Any) -> Client | None:
    """authlib's `client_secret_basic`, except that a header that is not base64 of UTF-8 text
    (non-ASCII characters, undecodable bytes) means no basic credentials, as other malformed
    base64 does there, instead of an uncaught ValueError (a 500)."""
    try:
        client_id, client_secret = extract_basic_authorization(request.headers)
    except ValueError:
        return None
    if not client_id or not client_secret:
        return None
    client: Client | None = query_client(client_id)
    if client is None:
        raise InvalidClientError(status_code=401,
                                 description="The client does not exist on this server.")
    return client if client.check_client_secret(client_secret) else None


# -- the endpoint ----------------------------------------------------------------------------


class TokenEndpoint:
    def __init__(self, config: Config, clients: ClientStore, grants: GrantStore,
                 tokens: TokenService, credentials: CredentialCheck) -> None:
        self.config, self.clients, self.grants, self.tokens = config, clients, grants, tokens
        self.credentials = credentials
        self.server = AuthorizationServer(query_client=self.query_client,
                                          save_token=self._save_token)
        self.server.register_client_auth_method("client_secret_basic",
                                                authenticate_client_secret_basic)

    def init_app(self, app: Flask) -> None:
        self.server.init_app(app)
        self.server.register_token_generator("default", self._generate_token)
        endpoint = self

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

            def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
                return endpoint._query_code(code, client)

            def authenticate_user(self, authorization_code: StoredCode) -> GrantUser | None:
                """The code is marked used when its tokens are saved (_save_token)."""
                return GrantUser(Identity.from_dict(authorization_code.data["identity"]),
                                 authorization_code.grant_id, authorization_code.get_nonce(),
                                 authorization_code.code, authorization_code.data)

            def delete_authorization_code(self, authorization_code: StoredCode) -> None:
                """Redeemed codes stay as 'used' so a second use can be detected."""

            def save_authorization_code(self, code: str, request: Any) -> None:
                raise NotImplementedError("codes are issued by Provider.complete")

        class RefreshGrant(RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
                return endpoint.find_refresh(refresh_token)

            def authenticate_user(self, refresh_token: StoredRefresh) -> GrantUser | None:
                """Runs after client authentication and the client binding check; the token
                is rotated (or found reused) when the new tokens are saved."""
                identity = endpoint.refresh_identity(refresh_token)
                if not endpoint.credential_valid(refresh_token, identity):
                    raise InvalidGrantError("The credential behind this grant was revoked.")
                return GrantUser(identity, refresh_token.grant_id)

            def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
                """Rotated atomically with saving the new tokens (_save_token)."""

        self.server.register_grant(CodeGrant, [CodeChallenge(required=True), self._add_id_token])
        self.server.register_grant(RefreshGrant)

    # -- OpenDID's refresh endpoint ---------------------------------------------------------------

    def refresh_opendid(self, refresh_token: str) -> dict[str, str] | None:
        """`/api/v1/refresh`: rotate an OpenDID-style client's refresh token; None when it is
        not valid here. Standard and public clients' tokens (and those of clients that opted
        in with `refreshRequiresClientAuth`) are refused unchanged: they need client
        authentication, at `/token`."""
        stored = self.find_refresh(refresh_token)
        if stored is None:
            return None
        client = self.clients.get(stored.client_id)
        if client is None:
            return None
        if client.refresh_needs_client_auth:
            log.info("refused /api/v1/refresh for %s: its refresh tokens need client "
                     "authentication at /token", client.client_id)
            return None
        identity = self.refresh_identity(stored)
        if not self.credential_valid(stored, identity):
            return None
        scope = stored.get_scope()
        access = self.tokens.access_token(client, identity, scope)
        refresh = self.tokens.refresh_token(client, identity, scope)
        if not self._rotate(stored, client, identity, scope, [
                (access.token, "access", access.lifetime),
                (refresh.token, "refresh", refresh.lifetime)]):
            return None
        return {"accessToken": access.token, "refreshToken": refresh.token}

    @staticmethod
    def refresh_identity(stored: StoredRefresh) -> Identity:
        return Identity.from_dict(stored.data["identity"])

    def credential_valid(self, stored: StoredRefresh, identity: Identity) -> bool:
        """The grant's credential is still attested; if not, the grant ends here."""
        if self.credentials.still_valid(identity):
            return True
        revoked = self.grants.revoke_grant(stored.grant_id)
        log.info("refresh by %s refused: credential no longer attested; revoked grant %s "
                 "(%d tokens)", stored.client_id, stored.grant_id, revoked)
        return False

    def _rotate(self, stored: StoredRefresh, client: ClientRecord, identity: Identity,
                scope: str | None, new: list[tuple[str, str, int]]) -> bool:
        """Replace `stored` by the new tokens, atomically. Failing means it was rotated before
        (presented again, or lost a race for it): a reuse, which ends the grant."""
        data = token_data(identity, scope)
        if self.grants.rotate(stored.token, "refresh", stored.grant_id, client.client_id,
                              [NewToken(token, kind, data, ttl) for token, kind, ttl in new]):
            return True
        self._reused(stored)
        return False

    def _reused(self, stored: StoredRefresh) -> None:
        """A rotated refresh token came back: someone else holds it; end the whole grant."""
        revoked = self.grants.revoke_grant(stored.grant_id)
        log.warning("refresh token of %s reused: revoked grant %s (%d tokens)", stored.client_id,
                    stored.grant_id, revoked)

    # -- authlib callbacks ----------------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        record = self.clients.get(client_id) if client_id else None
        return Client(record) if record else None

    def _query_code(self, code: str, client: Client) -> StoredCode | None:
        found = self.grants.find_code(code)
        if found is None:
            return None
        grant_id, data, used = found
        if not hmac.compare_digest(str(data["client_id"]), client.client_id):
            return None
        if used:
            revoked = self.grants.revoke_grant(grant_id)
            log.warning("code reused by %s: revoked %d tokens of its grant", client.client_id,
                        revoked)
            return None
        return StoredCode(code, grant_id, data)

    def find_refresh(self, token: str) -> StoredRefresh | None:
        found = self.grants.find_token(token, "refresh")
        if found is None:
            return None
        return StoredRefresh(token, found.grant_id, found.client_id, found.data)

    def _generate_token(self, grant_type: str, client: Client, user: GrantUser,
                        scope: str | None, expires_in: int | None = None,
                        include_refresh_token: bool = True) -> dict[str, Any]:
        access = self.tokens.access_token(client.record, user.identity, scope)
        token: dict[str, Any] = {"access_token": access.token, "token_type": "bearer",
                                 "expires_in": access.lifetime}
        if include_refresh_token:
            refresh = self.tokens.refresh_token(client.record, user.identity, scope)
            token["refresh_token"] = refresh.token
        if scope:
            token["scope"] = scope
        return token

    def _save_token(self, token: dict[str, Any], request: Any) -> None:
        user: GrantUser = request.user
        client: Client = request.client
        scope = token.get("scope")
        lifetime = self.config.jwt
        new = [(token["access_token"], "access", lifetime.accessTokenLifetime)]
        if "refresh_token" in token:
            new.append((token["refresh_token"], "refresh", lifetime.refreshTokenLifetime))
        old: StoredRefresh | None = request.refresh_token
        if old is not None:  # grant_type=refresh_token
            if not self._rotate(old, client.record, user.identity, scope, new):
                raise InvalidGrantError("The refresh token was already used.")
            return
        code: StoredCode = request.authorization_code
        data = token_data(user.identity, scope)
        if not self.grants.redeem_code(code.code, code.grant_id, client.client_id,
                                       [NewToken(value, kind, data, ttl)
                                        for value, kind, ttl in new]):
            revoked = self.grants.revoke_grant(code.grant_id)
            log.warning("code reused by %s: revoked %d tokens of its grant", client.client_id,
                        revoked)
            raise InvalidGrantError("The authorization code was already used.")

    def _add_id_token(self, grant: Any) -> None:
        """authlib extension: every code exchange also returns an ID token."""

        def process(grant: Any, response: Any) -> None:
            _, token, _ = response
            user: GrantUser = grant.request.user
            client: Client = grant.request.client
            token["id_token"] = self.tokens.id_token(client.record, user.identity, user.nonce,
                                                     token["access_token"])

        grant.register_hook("after_create_token_response", process)

"""The OpenID provider: authorization requests, their results, and authlib's token endpoint.

The authorize step and its result (code or implicit tokens) follow OpenDID's contract (302s and
fragments the original's front ends expect); the token endpoint, client authentication, PKCE and
RFC 6749 error bodies are authlib's grants over our stores.

Refresh tokens rotate at both refresh endpoints: `/token` (`grant_type=refresh_token`, client
authentication as RFC 6749 §6 requires for confidential clients) and OpenDID's
`/api/v1/refresh` (no client authentication: kept for OpenDID-style clients' tokens only, since
existing integrations use it). Presenting a rotated refresh token again is a reuse (RFC 9700
§4.14.2): the whole grant is revoked. Of two racing presentations of one token, exactly one
rotates it; the other is a reuse, so the winner's new tokens are revoked as well.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask

from opendid.config import Config
from opendid.login.identity import Identity
from opendid.oidc.tokens import TokenService
from opendid.store.clients import (
    RESPONSE_TYPES,
    ClientRecord,
    ClientStore,
    client_secret_matches,
)
from opendid.store.grants import GrantStore, NewToken

log = logging.getLogger(__name__)

__all__ = ["RESPONSE_MODES", "RESPONSE_TYPES", "AuthRequest", "AuthorizeError", "Client",
           "Provider", "error_location"]

RESPONSE_MODES = ("query", "fragment")
CODE_LIFETIME = 60
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
MAX_PARAM_LENGTH = 2048


class AuthorizeError(Exception):
    """An authorization request that fails. `redirect` is False while the client or redirect URI
    is not known good: then we must not redirect (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str, redirect: bool) -> None:
        super().__init__(description)
        self.error, self.description, self.redirect = error, description, redirect
        self.location: str | None = None


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorization request, kept in the login session."""

    client_id: str
    redirect_uri: str
    response_type: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    response_mode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthRequest:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


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
    rotation tells (`Provider._rotate`); failing it means the token was presented again."""

    def __init__(self, token: str, grant_id: str, client_id: str, data: dict[str, Any]) -> None:
        self.token, self.grant_id, self.client_id, self.data = token, grant_id, client_id, data

    def check_client(self, client: Client) -> bool:
        return hmac.compare_digest(client.client_id, self.client_id)

    def get_scope(self) -> str:
        return str(self.data.get("scope") or "")


# -- the provider ----------------------------------------------------------------------------


class Provider:
    def __init__(self, config: Config, clients: ClientStore, grants: GrantStore,
                 tokens: TokenService) -> None:
        self.config, self.clients, self.grants, self.tokens = config, clients, grants, tokens
        self.server = AuthorizationServer(query_client=self._query_client,
                                          save_token=self._save_token)

    def init_app(self, app: Flask) -> None:
        self.server.init_app(app)
        self.server.register_token_generator("default", self._generate_token)
        provider = self

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

            def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
                return provider._query_code(code, client)

            def authenticate_user(self, authorization_code: StoredCode) -> GrantUser | None:
                """The code is marked used when its tokens are saved (Provider._save_token)."""
                return GrantUser(Identity.from_dict(authorization_code.data["identity"]),
                                 authorization_code.grant_id, authorization_code.get_nonce(),
                                 authorization_code.code)

            def delete_authorization_code(self, authorization_code: StoredCode) -> None:
                """Redeemed codes stay as 'used' so a second use can be detected."""

            def save_authorization_code(self, code: str, request: Any) -> None:
                raise NotImplementedError("codes are issued by Provider.complete")

        class RefreshGrant(RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
                return provider._find_refresh(refresh_token)

            def authenticate_user(self, refresh_token: StoredRefresh) -> GrantUser | None:
                """Runs after client authentication and the client binding check; the token
                is rotated (or found reused) when the new tokens are saved."""
                return GrantUser(provider._refresh_identity(refresh_token),
                                 refresh_token.grant_id)

            def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
                """Rotated atomically with saving the new tokens (Provider._save_token)."""

        self.server.register_grant(CodeGrant, [CodeChallenge(required=True), self._add_id_token])
        self.server.register_grant(RefreshGrant)

    # -- authorization requests ------------------------------------------------------------------

    def validate_authorize(self, args: Mapping[str, str]) -> AuthRequest:
        """Check an authorization request; errors say whether redirecting is allowed."""
        for name, value in args.items():
            if len(value) > MAX_PARAM_LENGTH:
                raise AuthorizeError("invalid_request", f"Parameter {name} is too long", False)
        client = self.clients.get(args.get("client_id", "")) if args.get("client_id") else None
        if client is None:
            raise AuthorizeError("invalid_request", "Invalid client_id", False)
        redirect_uri = args.get("redirect_uri", "")
        if not _valid_uri(redirect_uri) or redirect_uri not in client.redirect_urls:
            raise AuthorizeError("invalid_request", "Invalid redirect_uri", False)
        state = args.get("state")
        response_type = args.get("response_type")
        response_mode = args.get("response_mode")
        error_mode = response_mode if _mode_allowed(response_type, response_mode) else None

        def fail(error: str, description: str) -> AuthorizeError:
            exc = AuthorizeError(error, description, True)
            exc.location = error_location(client, redirect_uri, response_type, state, error,
                                          description, error_mode)
            return exc

        if "request" in args:
            raise fail("request_not_supported", "Request objects are not supported")
        if "request_uri" in args:
            raise fail("request_uri_not_supported", "request_uri is not supported")
        if not response_type:
            raise fail("invalid_request", "Invalid response_type")
        if response_type not in RESPONSE_TYPES:
            raise fail("unsupported_response_type", "Invalid response_type")
        if response_type not in client.allowed_response_types:
            raise fail("unauthorized_client",
                       f"This client may not use response_type {response_type}")
        if response_mode is not None and not _mode_allowed(response_type, response_mode):
            raise fail("invalid_request", "Unsupported response_mode for this response_type")
        nonce = args.get("nonce")
        if response_type != "code" and not nonce:
            raise fail("invalid_request", "Invalid nonce")
        challenge = args.get("code_challenge")
        method = args.get("code_challenge_method") or ("S256" if challenge else None)
        if challenge and method != "S256":
            raise fail("invalid_request", "Only the S256 code_challenge_method is supported")
        if response_type == "code" and not client.client_secret and not challenge:
            raise fail("invalid_request", "PKCE (S256 code_challenge) is required for this client")
        return AuthRequest(client.client_id, redirect_uri, response_type,
                           args.get("scope") or "openid", state, nonce, challenge, method,
                           response_mode)

    def cancel_location(self, request: AuthRequest) -> str:
        """Where to send the user who gives up: the client's redirect URI with access_denied."""
        return error_location(self.client_for(request), request.redirect_uri,
                              request.response_type, request.state, "access_denied",
                              "The user cancelled the login", request.response_mode)

    def client_for(self, request: AuthRequest) -> ClientRecord:
        client = self.clients.get(request.client_id)
        if client is None:
            raise AuthorizeError("invalid_request", "Invalid client_id", False)
        return client

    def complete(self, request: AuthRequest, client: ClientRecord, identity: Identity) -> str:
        """Finish a login: the URL (code or implicit tokens) the browser must go to."""
        grant_id = uuid.uuid4().hex
        if request.response_type == "code":
            code = uuid.uuid4().hex + uuid.uuid4().hex
            self.grants.save_code(code, grant_id, {
                **request.to_dict(), "identity": identity.to_dict(),
            }, CODE_LIFETIME)
            log.info("issued code to %s for %s", client.client_id, identity.did)
            return _with_params(request.redirect_uri, {"code": code, "state": request.state},
                                request.response_mode == "fragment")
        return _with_params(request.redirect_uri,
                            self._implicit(client, request, identity, grant_id), True)

    def _implicit(self, client: ClientRecord, request: AuthRequest, identity: Identity,
                  grant_id: str) -> dict[str, Any]:
        want_access = request.response_type == "id_token token"
        access = self.tokens.access_token(client, identity, request.scope) if want_access else None
        if access:
            self._store(access.token, "access", grant_id, client, identity, access.lifetime,
                        request.scope)
        id_token = self.tokens.id_token(client, identity, request.nonce,
                                        access.token if access else None)
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
                               _token_data(identity, scope), lifetime)

    # -- OpenDID's refresh endpoint and userinfo ---------------------------------------------------

    def refresh_opendid(self, refresh_token: str) -> dict[str, str] | None:
        """`/api/v1/refresh`: rotate an OpenDID-style client's refresh token; None when it is
        not valid here. Standard and public clients' tokens (and those of clients that opted
        in with `refreshRequiresClientAuth`) are refused unchanged: they need client
        authentication, at `/token`."""
        stored = self._find_refresh(refresh_token)
        if stored is None:
            return None
        client = self.clients.get(stored.client_id)
        if client is None:
            return None
        if client.refresh_needs_client_auth:
            log.info("refused /api/v1/refresh for %s: its refresh tokens need client "
                     "authentication at /token", client.client_id)
            return None
        identity = self._refresh_identity(stored)
        scope = stored.get_scope()
        access = self.tokens.access_token(client, identity, scope)
        refresh = self.tokens.refresh_token(client, identity, scope)
        if not self._rotate(stored, client, identity, scope, [
                (access.token, "access", access.lifetime),
                (refresh.token, "refresh", refresh.lifetime)]):
            return None
        return {"accessToken": access.token, "refreshToken": refresh.token}

    @staticmethod
    def _refresh_identity(stored: StoredRefresh) -> Identity:
        return Identity.from_dict(stored.data["identity"])

    def _rotate(self, stored: StoredRefresh, client: ClientRecord, identity: Identity,
                scope: str | None, new: list[tuple[str, str, int]]) -> bool:
        """Replace `stored` by the new tokens, atomically. Failing means it was rotated before
        (presented again, or lost a race for it): a reuse, which ends the grant."""
        data = _token_data(identity, scope)
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

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        found = self.grants.active_token(access_token, "access")
        if found is None:
            return None
        identity = Identity.from_dict(found[2]["identity"])
        return {"sub": identity.did, "w3n": identity.web3name or "", "pro": identity.properties}

    # -- authlib callbacks ----------------------------------------------------------------------

    def _query_client(self, client_id: str) -> Client | None:
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

    def _find_refresh(self, token: str) -> StoredRefresh | None:
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
        data = _token_data(user.identity, scope)
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


def error_location(client: ClientRecord, redirect_uri: str, response_type: str | None,
                   state: str | None, error: str, description: str,
                   response_mode: str | None = None) -> str:
    """An error result: where the request's `response_mode` asked for results; else in the
    query as the original does, in the fragment for standard clients with an implicit
    response type (OIDC Core §3.2.2.6)."""
    if response_mode in RESPONSE_MODES:
        fragment = response_mode == "fragment"
    else:
        fragment = client.is_standard and response_type not in (None, "code")
    return _with_params(redirect_uri, {"error": error, "error_description": description,
                                       "state": state}, fragment)


def _mode_allowed(response_type: str | None, response_mode: str | None) -> bool:
    """Honoured response modes: `query` for the code flow only (tokens never go in a query,
    OAuth 2.0 Multiple Response Types §5), `fragment` for every response type."""
    if response_mode == "fragment":
        return True
    return response_mode == "query" and response_type == "code"


def _token_data(identity: Identity, scope: str | None) -> dict[str, Any]:
    return {"identity": identity.to_dict(), "scope": scope}


def _valid_uri(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _with_params(uri: str, params: Mapping[str, Any], fragment: bool) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if fragment:
        return f"{uri}#{query}"
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"


"""Token revocation (RFC 7009) and introspection (RFC 7662), as authlib endpoints over the
grant store, registered on the token endpoint's AuthorizationServer (same client auth).

Revocation: a client authenticates as at `/token` (public clients by client_id alone) and
revokes an access token (that token only) or a refresh token (its whole grant, RFC 7009 §2.1).
A token that is unknown, expired, already revoked or another client's gets the same 200 and
changes nothing (RFC 7009 §2.2): the answer tells a client nothing about tokens not its own.

Introspection: for confidential clients only (a public client holds no secret, and anyone can
send its client_id). Any confidential client may introspect an access token, whoever it was
issued to: a resource server is registered as a client of its own and checks the tokens other
apps send it (RFC 7662 §1); our access tokens are JWTs that carry `sub`, `client_id` and
`scope` readable by their holder anyway, so introspection adds only whether the token is still
live. A refresh token is only ever sent to this server by its own client, so only that client
may introspect it; for anyone else it is `{"active": false}`. A token whose credential is no
longer attested is inactive (and its grant ends), as at refresh and userinfo.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from opendid.login.identity import Identity
from opendid.login.revalidation import CredentialCheck
from opendid.oidc.token_endpoint import AUTH_METHODS, Client
from opendid.store.grants import LIVE, GrantStore, StoredToken

log = logging.getLogger(__name__)

REVOCATION_AUTH_METHODS = AUTH_METHODS
INTROSPECTION_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
SUPPORTED_HINTS = ("access_token", "refresh_token")
# RFC 7662 §2.2 `token_type` (RFC 6749 §5.1): access tokens are bearer tokens; a refresh token
# is named as its RFC 7009 hint, so that no resource server mistakes it for an access token.
TOKEN_TYPES = {"access": "Bearer", "refresh": "refresh_token"}


class FoundToken:
    """A stored token as authlib's endpoints see it; `value` is the string presented."""

    def __init__(self, value: str, record: StoredToken) -> None:
        self.value, self.record = value, record

    @property
    def kind(self) -> str:
        return self.record.kind

    def check_client(self, client: Client) -> bool:
        return self.record.client_id == client.client_id

    def is_expired(self) -> bool:
        return self.record.expires_at < time.time()

    def is_revoked(self) -> bool:
        return self.record.state != LIVE

    @property
    def identity(self) -> Identity:
        return Identity.from_dict(self.record.data["identity"])


class UnsupportedTokenType(OAuth2Error):
    """RFC 7009 §2.2.1, an error response of RFC 6749 §5.2: 400 (authlib's answers 401)."""

    error = "unsupported_token_type"
    status_code = 400


def _check_params(request: Any) -> None:
    """`token` present, once; `token_type_hint`, if sent, once and a registered type. RFC 6749
    §3.2: a parameter is sent at most once (which of two `token`s was meant?)."""
    for name in ("token", "token_type_hint"):
        if len(request.form.getlist(name)) > 1:
            raise InvalidRequestError(f"Duplicate '{name}' parameter.")
    if "token" not in request.form:
        raise InvalidRequestError("Missing 'token' in the form body.")
    hint = request.form.get("token_type_hint")
    if hint is not None and hint not in SUPPORTED_HINTS:
        raise UnsupportedTokenType(f"token_type_hint must be one of {', '.join(SUPPORTED_HINTS)}.")


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = REVOCATION_AUTH_METHODS

    def __init__(self, grants: GrantStore) -> None:
        super().__init__()
        self.grants = grants

    def check_params(self, request: Any, client: Client) -> None:
        _check_params(request)

    def authenticate_token(self, request: Any, client: Client) -> FoundToken | None:
        """authlib refuses another client's token with an error; RFC 7009 §2.2 (and not
        telling one client about another's tokens) wants the plain 200 of an invalid token."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is None or not token.check_client(client):
            return None
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        """A token hash names one token of either kind, so the hint needs no search order.
        A rotated refresh token is found too: revoking it ends its grant all the same."""
        record = self.grants.record(token_string, with_rotated=True)
        return None if record is None else FoundToken(token_string, record)

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        if token.kind == "refresh":
            revoked = self.grants.revoke_grant(token.record.grant_id)
            log.info("%s revoked a refresh token: grant %s ended (%d tokens)",
                     token.record.client_id, token.record.grant_id, revoked)
        else:
            self.grants.revoke_token(token.value, token.record.client_id)
            log.info("%s revoked an access token of grant %s", token.record.client_id,
                     token.record.grant_id)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = INTROSPECTION_AUTH_METHODS

    def __init__(self, grants: GrantStore, credentials: CredentialCheck) -> None:
        super().__init__()
        self.grants, self.credentials = grants, credentials

    def check_params(self, request: Any, client: Client) -> None:
        _check_params(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        record = self.grants.record(token_string)
        return None if record is None else FoundToken(token_string, record)

    def check_permission(self, token: FoundToken, client: Client, request: Any) -> bool:
        """Access tokens: any confidential client (a resource server); refresh tokens: only
        their own client. Then the credential behind the grant must still be attested."""
        if token.kind == "refresh" and not token.check_client(client):
            return False
        if self.credentials.still_valid(token.identity):
            return True
        revoked = self.grants.revoke_grant(token.record.grant_id)
        log.info("introspection by %s: credential no longer attested; grant %s ended "
                 "(%d tokens)", client.client_id, token.record.grant_id, revoked)
        return False

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        record = token.record
        payload: dict[str, Any] = {
            "active": True,
            "sub": token.identity.did,
            "client_id": record.client_id,
            "token_type": TOKEN_TYPES[record.kind],
            "exp": int(record.expires_at),
        }
        if record.issued_at is not None:
            payload["iat"] = int(record.issued_at)
        scope = record.data.get("scope")
        if scope:
            payload["scope"] = scope
        return payload


def register(server: AuthorizationServer, grants: GrantStore,
             credentials: CredentialCheck) -> None:
    """Add both endpoints to the token endpoint's authorization server."""
    server.register_endpoint(Revocation(grants))
    server.register_endpoint(Introspection(grants, credentials))

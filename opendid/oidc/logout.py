"""RP-initiated logout 1.0: validating a logout request.

The client is named by `client_id` or by the audience of `id_token_hint` (an ID token this
provider signed; its expiry is ignored). `post_logout_redirect_uri` is followed only when it is
registered for that client (`postLogoutRedirectUrls`, else its `redirectUrls`): never an open
redirector. Whether the session ends at once or after the user confirms is the web layer's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opendid.oidc.authorize import MAX_PARAM_LENGTH
from opendid.oidc.keys import KeyRing
from opendid.oidc.results import with_params
from opendid.oidc.sso import InvalidHint, audiences, hint_claims
from opendid.store.clients import ClientRecord, ClientStore


class LogoutError(ValueError):
    """A logout request we cannot act on: shown to the user, nothing changes."""


@dataclass(frozen=True)
class LogoutRequest:
    client: ClientRecord | None
    hint_sub: str | None
    # the registered post_logout_redirect_uri with `state`, or None: a plain page
    redirect: str | None
    # a post_logout_redirect_uri was given but is not registered for the client
    refused_redirect: bool = False


def allowed_redirects(client: ClientRecord) -> list[str]:
    return client.post_logout_redirect_urls or client.redirect_urls


def validate_logout(clients: ClientStore, keyring: KeyRing, issuer: str,
                    args: Mapping[str, str]) -> LogoutRequest:
    for name, value in args.items():
        if len(value) > MAX_PARAM_LENGTH:
            raise LogoutError(f"Parameter {name} is too long")
    client_id = args.get("client_id") or None
    hint_sub = None
    hint = args.get("id_token_hint")
    if hint:
        try:
            claims = hint_claims(keyring, issuer, hint)
        except InvalidHint as exc:
            raise LogoutError(f"Invalid id_token_hint: {exc}") from None
        named = audiences(claims)
        if client_id is not None and client_id not in named:
            raise LogoutError("The id_token_hint was issued to another client than client_id")
        if client_id is None and len(named) == 1:
            client_id = named[0]
        hint_sub = str(claims["sub"])
    client = clients.get(client_id) if client_id else None
    if client_id is not None and client is None:
        raise LogoutError("Invalid client_id")
    uri = args.get("post_logout_redirect_uri")
    if not uri:
        return LogoutRequest(client, hint_sub, None)
    if client is None or uri not in allowed_redirects(client):
        return LogoutRequest(client, hint_sub, None, refused_redirect=True)
    return LogoutRequest(client, hint_sub, with_params(uri, {"state": args.get("state")}, False))

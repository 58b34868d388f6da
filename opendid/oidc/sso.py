"""Single sign-on: may the browser's provider session answer this authorization request?

Only standard clients are answered from a session; OpenDID-style clients always get the wallet
(the original's behaviour). A session answers a client when the user logged in recently enough
(`max_age`), the request does not ask for a page (`prompt`), an `id_token_hint` names the same
user, and the earlier login covers the client: any login covers a DID-only client (which gets
the DID, never the credential), a credential client only a login that satisfied identical
requirements (same CTypes, attesters, properties). A credential shown to one client is thus
never given to a client with another policy without the user.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from opendid.login.identity import Identity
from opendid.oidc.authorize import AuthRequest
from opendid.oidc.keys import JWKS_ALGORITHMS, KeyRing
from opendid.store.clients import ClientRecord
from opendid.store.sso import SsoSession, requirements_fingerprint

StillValid = Callable[[Identity], bool]


class InvalidHint(ValueError):
    """An `id_token_hint` (or logout hint) that is not an ID token this provider issued."""


@dataclass(frozen=True)
class Reuse:
    """Answer the client without a page, with this identity."""

    identity: Identity


@dataclass(frozen=True)
class ShowLogin:
    """The wallet is needed. `signed_in_as` names who is logged in (for the page's notice);
    `hint_sub` is the user the client's `id_token_hint` named: the login must be that DID."""

    signed_in_as: str | None = None
    hint_sub: str | None = None


@dataclass(frozen=True)
class Refuse:
    """`prompt=none` that cannot be answered without a page, or a broken hint: an error for the
    client's redirect URI."""

    error: str
    description: str


Decision = Reuse | ShowLogin | Refuse


def hint_claims(keyring: KeyRing, issuer: str, token: str) -> dict[str, Any]:
    """The claims of an ID token this provider signed with a JWKS key; its expiry is ignored
    (OIDC Core 3.1.2.1 allows an expired hint). Tokens signed with OpenDID's shared key are not
    accepted: every client holds that key, so it proves nothing about who issued them."""
    try:
        decoded = jwt.decode(token, keyring.verification_keys(), algorithms=list(JWKS_ALGORITHMS))
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidHint("not an ID token signed by this provider") from exc
    claims = dict(decoded.claims)
    if claims.get("iss") != issuer or not isinstance(claims.get("sub"), str):
        raise InvalidHint("not an ID token issued by this provider")
    audience = claims.get("aud")
    if not (isinstance(audience, str) or (isinstance(audience, list) and audience
                                          and all(isinstance(a, str) for a in audience))):
        raise InvalidHint("the ID token has no audience")
    return claims


def audiences(claims: dict[str, Any]) -> list[str]:
    audience = claims["aud"]
    return [audience] if isinstance(audience, str) else list(audience)


def display_name(session: SsoSession) -> str:
    return f"w3n:{session.web3name}" if session.web3name else session.did


class SingleSignOn:
    """The decision; `still_valid` re-checks a credential (its attestation may have been
    revoked since the login) before a session answers for it."""

    def __init__(self, keyring: KeyRing, issuer: str, still_valid: StillValid) -> None:
        self.keyring, self.issuer, self.still_valid = keyring, issuer, still_valid

    def decide(self, request: AuthRequest, client: ClientRecord,
               session: SsoSession | None, now: float | None = None) -> Decision:
        if not client.is_standard:
            return ShowLogin()
        hint_sub = None
        if request.id_token_hint is not None:
            try:
                claims = hint_claims(self.keyring, self.issuer, request.id_token_hint)
            except InvalidHint as exc:
                return Refuse("invalid_request", f"Invalid id_token_hint: {exc}")
            if client.client_id not in audiences(claims):
                return Refuse("invalid_request", "Invalid id_token_hint: issued to another client")
            hint_sub = str(claims["sub"])
        silent = "none" in request.prompt
        signed_in_as = display_name(session) if session else None

        def no(error: str, description: str) -> Decision:
            if silent:
                return Refuse(error, description)
            return ShowLogin(signed_in_as, hint_sub)

        if session is None:
            return no("login_required", "The user is not logged in")
        if hint_sub is not None and hint_sub != session.did:
            return no("login_required", "The user logged in is not the one in id_token_hint")
        if request.prompt and not silent:  # login, consent, select_account: a page is wanted
            return ShowLogin(signed_in_as, hint_sub)
        now = time.time() if now is None else now
        if request.max_age is not None and now - session.auth_time >= request.max_age:
            return no("login_required", "The login is older than max_age")
        identity = self._covering(client, session)
        if identity is None:
            return no("interaction_required",
                      "This application needs a credential the user has not shared with it")
        if not self.still_valid(identity):
            return no("login_required", "The credential of the login is no longer valid")
        return Reuse(identity)

    @staticmethod
    def _covering(client: ClientRecord, session: SsoSession) -> Identity | None:
        """The identity to give this client from the session, or None if it does not cover it.
        `auth_time` is the session's: when the user last logged in with the wallet here."""
        if not client.requirements:
            return Identity(session.did, session.web3name, {}, session.auth_time)
        fingerprint = requirements_fingerprint(client.requirements)
        for entry in session.satisfied:
            if entry.fingerprint == fingerprint and entry.identity.did == session.did:
                return dataclasses.replace(entry.identity, auth_time=session.auth_time)
        return None

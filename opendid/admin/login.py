"""The admin's login through this very provider: a built-in DID-only client, the code flow
with PKCE, state and nonce, the code redeemed in-process in the provider's own grant store.

`start` keeps the login's secrets (PKCE verifier, state, nonce) in the one-time store under a
random id that only the admin's browser holds (a cookie); `finish` takes them once and redeems
the code exactly as `/token` would (client, redirect URI, PKCE, single use; a second use
revokes the grant), without minting tokens: the admin page needs the identity, not tokens.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from opendid.login.identity import Identity
from opendid.store.clients import ClientRecord, ClientStore
from opendid.store.grants import GrantStore
from opendid.store.onetime import OneTimeStore
from opendid.store.redis_grants import RedisGrantStore
from opendid.store.redis_onetime import RedisOneTimeStore

log = logging.getLogger(__name__)

ADMIN_CLIENT_ID = "opendid-admin"
BUILTIN_SOURCE = "builtin"
PENDING_KIND = "admin_login"
PENDING_TTL = 600  # seconds the admin has to finish the wallet login


class AdminLoginError(Exception):
    """The callback cannot log anyone in; the message says why (shown on a 400 page)."""


@dataclass(frozen=True)
class Pending:
    login_id: str
    authorize_url: str


def callback_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/admin/callback"


def admin_client(issuer: str) -> ClientRecord:
    """Public (PKCE, no secret), DID-only (no requirements), code flow only."""
    return ClientRecord(ADMIN_CLIENT_ID, None, [callback_url(issuer)], [], "RS256", ("code",))


def register_client(clients: ClientStore, issuer: str, enabled: bool) -> None:
    """Registered while the admin page is enabled; removed again when it is not."""
    if enabled:
        clients.upsert(admin_client(issuer), source=BUILTIN_SOURCE)
    elif clients.source(ADMIN_CLIENT_ID) == BUILTIN_SOURCE:
        clients.delete(ADMIN_CLIENT_ID)


def start(onetime: OneTimeStore | RedisOneTimeStore, issuer: str) -> Pending:
    """A new admin login: its secrets stored once, the authorization request to send the
    browser to. `prompt=login`: the wallet is always asked, never single sign-on."""
    login_id = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    onetime.put(PENDING_KIND, login_id, {"verifier": verifier, "state": state, "nonce": nonce},
                PENDING_TTL)
    query = urlencode({
        "client_id": ADMIN_CLIENT_ID, "redirect_uri": callback_url(issuer),
        "response_type": "code", "scope": "openid", "state": state, "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256", "prompt": "login",
    })
    return Pending(login_id, f"/api/v1/authorize?{query}")


def finish(onetime: OneTimeStore | RedisOneTimeStore, grants: GrantStore | RedisGrantStore,
           issuer: str, login_id: str | None, args: dict[str, str]) -> Identity:
    """The identity behind the callback's code, or `AdminLoginError`. The pending login is
    taken first, so a callback is answered once however it ends."""
    pending: dict[str, Any] | None = onetime.take(PENDING_KIND, login_id) if login_id else None
    if pending is None:
        raise AdminLoginError("No admin login is in progress in this browser (or it expired).")
    if not _same(args.get("state"), pending["state"]):
        raise AdminLoginError("The login answer does not belong to this browser's login.")
    if "error" in args:
        raise AdminLoginError("The login was not completed: "
                              f"{args.get('error_description') or args['error']}"[:300])
    code = args.get("code") or ""
    found = grants.find_code(code) if code else None
    if found is None:
        raise AdminLoginError("The login answer carries no valid code.")
    grant_id, data, _ = found  # a used code fails at redeem_code, atomically
    if (not _same(data.get("client_id"), ADMIN_CLIENT_ID)
            or not _same(data.get("redirect_uri"), callback_url(issuer))):
        raise AdminLoginError("The code was not issued for the admin page.")
    challenge = create_s256_code_challenge(pending["verifier"])
    if (not _same(data.get("code_challenge"), challenge)
            or not _same(data.get("nonce"), pending["nonce"])):
        raise AdminLoginError("The code was not issued for this browser's login.")
    if not grants.redeem_code(code, grant_id, ADMIN_CLIENT_ID, []):
        raise AdminLoginError("The code was already used.")
    return Identity.from_dict(data["identity"])


def _same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode())

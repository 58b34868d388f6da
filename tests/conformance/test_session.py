"""Basic OP / Implicit OP / Form Post OP: the provider's login session (single sign-on):
prompt=none, prompt=login, max_age, id_token_hint."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Opendid
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.login.identity import Identity
from tests.conformance.conftest import (
    ALL,
    CODE,
    OP,
    RP,
    USER_INTERFACE_ERRORS,
    Browser,
    Flow,
    Variant,
    complete,
    new_browser,
    run,
    variants,
    wait_until_older_than,
)


@variants(*ALL)
def test_oidcc_prompt_none_not_logged_in(browser: Browser, rp: RP, variant: Variant) -> None:
    """No session: an error that needs a user interface (login_required), at the redirect
    URI, with the 128-character state intact and iss (RFC 9207)."""
    request = rp.request(variant, prompt="none", state_length=128)
    answer = browser.silent(request.url, rp.redirect_uri)
    assert rp.check_error(request, answer) in USER_INTERFACE_ERRORS
    assert answer["error"] == "login_required"
    assert answer.get("iss") == rp.op.issuer


# -- one login, reused (AbstractOIDCCSameAuthTwiceServerTest) ------------------------------------


class SignedIn:
    """A browser after a completed code-flow login with max_age=15000 (so the first ID
    token carries auth_time, as oidcc-max-age-10000 asks), and that first flow."""

    def __init__(self, browser: Browser, flow: Flow) -> None:
        self.browser, self.first = browser, flow


@pytest.fixture(scope="module")
def signed_in(opendid: Opendid, wallet: Wallet, chain: ChainClient, op: OP) -> Iterator[SignedIn]:
    """Shared by the modules that only reuse the session (none of them changes it)."""
    browser = new_browser(opendid, wallet, chain)
    flow = run(browser, RP(op), CODE, max_age="15000")
    assert "auth_time" in flow.claims  # CheckIdTokenAuthTimeClaimPresentDueToMaxAge
    yield SignedIn(browser, flow)
    browser.http.close()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _second(signed_in: SignedIn, rp: RP, variant: Variant, **extra: str) -> Flow:
    """The second authorization: answered without the wallet, the same sub and auth_time
    (CheckIdTokenAuthTimeClaimsSameIfPresent, CheckIdTokenSubConsistentForSecondAuthorization)."""
    request = rp.request(variant, **extra)
    flow = complete(rp, request, signed_in.browser.silent(request.url, rp.redirect_uri))
    assert flow.claims["sub"] == signed_in.first.claims["sub"]
    if "auth_time" in flow.claims:
        assert flow.claims["auth_time"] == signed_in.first.claims["auth_time"]
    return flow


@variants(*ALL)
def test_oidcc_prompt_none_logged_in(signed_in: SignedIn, rp: RP, variant: Variant) -> None:
    _second(signed_in, rp, variant, prompt="none")


@variants(*ALL)
def test_oidcc_max_age_10000(signed_in: SignedIn, rp: RP, variant: Variant) -> None:
    flow = _second(signed_in, rp, variant, max_age="10000")
    assert "auth_time" in flow.claims  # max_age was sent: auth_time is required (§3.1.2.1)


@variants(*ALL)
def test_oidcc_id_token_hint(signed_in: SignedIn, rp: RP, variant: Variant) -> None:
    _second(signed_in, rp, variant, prompt="none", id_token_hint=signed_in.first.id_token)


def test_id_token_hint_of_another_user_gets_login_required(signed_in: SignedIn, rp: RP,
                                                           opendid: Opendid,
                                                           provisioned: dict[str, Any]) -> None:
    """Beyond the module: a genuine ID token of this provider, for a DID other than the
    session's, does not reuse the session (issue 7, §1)."""
    other = provisioned["attester"]["did"]
    assert other != signed_in.first.claims["sub"]
    svc = opendid.services
    hint = svc.tokens.id_token(svc.clients.get(rp.client_id), Identity(other, None), None)
    request = rp.request(CODE, prompt="none", id_token_hint=hint)
    answer = signed_in.browser.silent(request.url, rp.redirect_uri)
    assert rp.check_error(request, answer) == "login_required"


def _broken(token: str, how: str) -> str:
    head, payload, signature = token.split(".")
    if how == "bad-signature":
        return f"{head}.{payload}.{signature[:-4]}AAAA"
    if how == "alg-none":
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        header["alg"] = "none"
        return f"{_b64(json.dumps(header).encode())}.{payload}."
    return "not-a-jwt"


@pytest.mark.parametrize("how", ["bad-signature", "alg-none", "garbage"])
def test_a_broken_id_token_hint_is_an_error(signed_in: SignedIn, rp: RP, how: str) -> None:
    """Beyond the module: a hint this provider did not sign (its signature altered, switched
    to alg none, or not a JWT) is refused (an error at the redirect URI, or an error page),
    never a silent login into the live session."""
    request = rp.request(CODE, prompt="none", id_token_hint=_broken(signed_in.first.id_token,
                                                                    how))
    response = signed_in.browser.go(request.url)
    if response.status_code == 400:
        return
    answer = signed_in.browser.outcome(response, rp.redirect_uri, wallet=False)
    rp.check_error(request, answer)


def test_sso_covers_another_client_with_the_same_requirements(signed_in: SignedIn,
                                                              op: OP) -> None:
    """Beyond the modules: a client whose credential requirements the earlier login satisfied
    (es-client asks for what standard-client asked) is answered from the session too."""
    other = RP(op, client_id="es-client")
    _second(signed_in, other, CODE, prompt="none")


# -- a second login (prompt=login, max_age=1) ------------------------------------------------


class FirstLogins:
    """One browser per (module, variant), each after its first, normal flow; then the one
    wait of max_age=1, so every second login is strictly later than its first."""

    def __init__(self) -> None:
        self.done: dict[tuple[str, str], tuple[Browser, Flow] | BaseException] = {}

    def get(self, module: str, variant: Variant) -> tuple[Browser, Flow]:
        found = self.done[(module, variant.id)]
        if isinstance(found, BaseException):
            raise found
        return found


@pytest.fixture(scope="module")
def first_logins(opendid: Opendid, wallet: Wallet, chain: ChainClient,
                 op: OP) -> Iterator[FirstLogins]:
    logins = FirstLogins()
    for module in ("prompt-login", "max-age-1"):
        for variant in ALL:
            browser = new_browser(opendid, wallet, chain)
            try:
                logins.done[(module, variant.id)] = (browser, run(browser, RP(op), variant))
            except Exception as exc:  # reported by that variant's test
                logins.done[(module, variant.id)] = exc
    times = [found[1].claims["auth_time"] for found in logins.done.values()
             if not isinstance(found, BaseException) and "auth_time" in found[1].claims]
    if times:
        wait_until_older_than(max(times), 1)
    yield logins
    for found in logins.done.values():
        if not isinstance(found, BaseException):
            found[0].http.close()


def _relogin(browser: Browser, rp: RP, first: Flow, variant: Variant, **extra: str) -> Flow:
    """The second authorization must show the login page again (ExpectSecondLoginPage); the
    user logs in with the wallet; auth_time is later (CheckSecondIdTokenAuthTimeIsLater)."""
    request = rp.request(variant, **extra)
    response = browser.authorize(request.url, rp.redirect_uri)
    assert response.wallet, "the provider reused the session"
    flow = complete(rp, request, response)
    assert flow.claims["sub"] == first.claims["sub"]
    if "auth_time" in flow.claims and "auth_time" in first.claims:
        assert flow.claims["auth_time"] > first.claims["auth_time"]
    return flow


@variants(*ALL)
def test_oidcc_prompt_login(first_logins: FirstLogins, rp: RP, variant: Variant) -> None:
    browser, first = first_logins.get("prompt-login", variant)
    _relogin(browser, rp, first, variant, prompt="login")


@variants(*ALL)
def test_oidcc_max_age_1(first_logins: FirstLogins, rp: RP, variant: Variant) -> None:
    """After the wait, max_age=1: a new login, and auth_time present
    (CheckIdTokenAuthTimeClaimPresentDueToMaxAge) and recent."""
    browser, first = first_logins.get("max-age-1", variant)
    flow = _relogin(browser, rp, first, variant, max_age="1")
    assert "auth_time" in flow.claims
    assert flow.claims["auth_time"] > first.claims["auth_time"]

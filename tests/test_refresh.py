"""Refresh tokens as an attacker would try them: the unauthenticated `/api/v1/refresh` refuses
tokens that need client authentication, `/token` refuses wrong or missing client credentials
and other clients' tokens, a reused (already rotated) token revokes its whole grant, and of
racing refreshes exactly one wins (and the losers' reuse revokes the winner's tokens too)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from conftest import OPENDID_REDIRECT, SECRET, STANDARD_REDIRECT
from opendid.devtools.login_driver import LoginDriver, pkce_pair
from tests.client_auth import post_as_client

REDIRECTS = {"opendid-client": OPENDID_REDIRECT, "opt-in-client": OPENDID_REDIRECT,
             "code-only-client": OPENDID_REDIRECT, "standard-client": STANDARD_REDIRECT,
             "es-client": STANDARD_REDIRECT, "public-client": STANDARD_REDIRECT,
             "bare-public-client": STANDARD_REDIRECT}
PUBLIC = {"public-client", "bare-public-client"}
RACERS = 8


def login_tokens(driver: LoginDriver, client_id: str) -> dict[str, Any]:
    """A fresh grant: code flow (with PKCE) and redemption at /token, as the client does; with
    the wallet every time (`prompt=login`), also where this browser has a provider session."""
    verifier, challenge = pkce_pair()
    params = driver.login(client_id=client_id, redirect_uri=REDIRECTS[client_id],
                          response_type="code", scope="openid", state="s", nonce="n",
                          code_challenge=challenge, code_challenge_method="S256",
                          prompt="login")
    form = {"grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": REDIRECTS[client_id], "code_verifier": verifier,
            "client_id": client_id}
    if client_id not in PUBLIC:
        form["client_secret"] = SECRET
    response = requests.post(driver.url("/api/v1/token"), data=form, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def at_token(driver: LoginDriver, refresh_token: str, client_id: str,
             secret: str | None = SECRET, basic: bool = False) -> requests.Response:
    return post_as_client(driver.url("/api/v1/token"),
                          {"grant_type": "refresh_token", "refresh_token": refresh_token},
                          client_id, secret, basic, send_secret=client_id not in PUBLIC)


def at_api(driver: LoginDriver, refresh_token: str) -> requests.Response:
    return requests.post(driver.url("/api/v1/refresh"), json={"refreshToken": refresh_token},
                         timeout=30)


def refresh(driver: LoginDriver, where: str, refresh_token: str,
            client_id: str) -> requests.Response:
    return at_api(driver, refresh_token) if where == "api" else at_token(
        driver, refresh_token, client_id)


def pair(response: requests.Response) -> tuple[str, str]:
    """(access token, refresh token) of a successful refresh at either endpoint."""
    body = response.json()
    if "accessToken" in body:
        return body["accessToken"], body["refreshToken"]
    return body["access_token"], body["refresh_token"]


def userinfo_status(driver: LoginDriver, access_token: str) -> int:
    return requests.get(driver.url("/api/v1/userinfo"), timeout=30,
                        headers={"Authorization": f"Bearer {access_token}"}).status_code


def refused(response: requests.Response, where: str) -> bool:
    if where == "api":
        return (response.status_code, response.text) == (401, "Invalid token")
    return (response.status_code, response.json()["error"]) == (400, "invalid_grant")


# -- /api/v1/refresh: only OpenDID-style clients' tokens --------------------------------------

@pytest.mark.parametrize("client_id", ["standard-client", "public-client", "bare-public-client",
                                       "opt-in-client"])
def test_api_refresh_refuses_tokens_that_need_client_authentication(driver, client_id):
    tokens = login_tokens(driver, client_id)
    response = at_api(driver, tokens["refresh_token"])
    assert (response.status_code, response.text) == (401, "Invalid token")
    # refused without any change: the token still rotates where the client authenticates,
    # and nothing of the grant was revoked
    assert userinfo_status(driver, tokens["access_token"]) == 200
    rotated = at_token(driver, tokens["refresh_token"], client_id)
    assert rotated.status_code == 200, rotated.text


def test_api_refresh_still_rotates_opendid_style_tokens(driver):
    tokens = login_tokens(driver, "opendid-client")
    response = at_api(driver, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    access, _ = pair(response)
    assert userinfo_status(driver, access) == 200


# -- /token: client authentication and binding ------------------------------------------------

@pytest.mark.parametrize("client_id", ["opendid-client", "standard-client", "opt-in-client"])
def test_token_refresh_needs_the_confidential_clients_authentication(driver, client_id):
    tokens = login_tokens(driver, client_id)
    token = tokens["refresh_token"]
    for attempt in (at_token(driver, token, client_id, secret=None),
                    at_token(driver, token, client_id, secret="wrong-secret"),
                    at_token(driver, token, client_id, secret=SECRET.upper()),
                    at_token(driver, token, client_id, secret="wrong-secret", basic=True)):
        assert (attempt.status_code, attempt.json()["error"]) == (401, "invalid_client")
    assert userinfo_status(driver, tokens["access_token"]) == 200
    assert at_token(driver, token, client_id, basic=True).status_code == 200


@pytest.mark.parametrize("owner, presenter", [("standard-client", "es-client"),
                                              ("opendid-client", "opt-in-client")])
def test_a_valid_refresh_token_of_another_client_is_refused(driver, owner, presenter):
    tokens = login_tokens(driver, owner)
    response = at_token(driver, tokens["refresh_token"], presenter)  # presenter's own secret
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    assert userinfo_status(driver, tokens["access_token"]) == 200  # nothing was revoked
    assert at_token(driver, tokens["refresh_token"], owner).status_code == 200


# -- reuse detection (RFC 9700 §4.14.2) -------------------------------------------------------

@pytest.mark.parametrize("client_id, rotate_at, reuse_at", [
    ("standard-client", "token", "token"),
    ("opendid-client", "api", "api"),
    ("opendid-client", "api", "token"),
    ("opendid-client", "token", "api"),
])
def test_reusing_a_rotated_refresh_token_revokes_the_whole_grant(driver, client_id, rotate_at,
                                                                 reuse_at):
    tokens = login_tokens(driver, client_id)
    first = refresh(driver, rotate_at, tokens["refresh_token"], client_id)
    assert first.status_code == 200, first.text
    access1, refresh1 = pair(first)
    second = refresh(driver, rotate_at, refresh1, client_id)
    assert second.status_code == 200, second.text
    access2, refresh2 = pair(second)
    assert userinfo_status(driver, access2) == 200

    reuse = refresh(driver, reuse_at, tokens["refresh_token"], client_id)
    assert refused(reuse, reuse_at)
    for access in (tokens["access_token"], access1, access2):
        assert userinfo_status(driver, access) == 401
    assert refused(refresh(driver, rotate_at, refresh2, client_id), rotate_at)
    assert refused(refresh(driver, reuse_at, refresh2, client_id), reuse_at)


def test_a_refused_presentation_of_a_rotated_token_changes_nothing(driver):
    """Reuse is only counted where the token would otherwise be accepted: the wrong client or
    the unauthenticated endpoint are refused before it, without revoking anything."""
    tokens = login_tokens(driver, "standard-client")
    access1, refresh1 = pair(at_token(driver, tokens["refresh_token"], "standard-client"))
    assert refused(at_api(driver, tokens["refresh_token"]), "api")
    assert refused(at_token(driver, tokens["refresh_token"], "es-client"), "token")
    assert userinfo_status(driver, access1) == 200
    assert at_token(driver, refresh1, "standard-client").status_code == 200


# -- racing refreshes -------------------------------------------------------------------------

@pytest.mark.parametrize("client_id, where", [("standard-client", "token"),
                                              ("opendid-client", "api")])
def test_racing_refreshes_one_wins_and_the_reuse_revokes_its_tokens(driver, client_id, where):
    tokens = login_tokens(driver, client_id)
    start = threading.Barrier(RACERS)

    def present(_: int) -> requests.Response:
        start.wait(timeout=30)
        return refresh(driver, where, tokens["refresh_token"], client_id)

    with ThreadPoolExecutor(RACERS) as pool:
        responses = list(pool.map(present, range(RACERS)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert all(400 <= s < 500 for s in statuses if s != 200), statuses
    assert all(refused(r, where) for r in responses if r.status_code != 200)
    # the losers presented a rotated token: a reuse, so the winner's tokens are revoked too
    winner = next(r for r in responses if r.status_code == 200)
    access, new_refresh = pair(winner)
    assert userinfo_status(driver, access) == 401
    assert refused(refresh(driver, where, new_refresh, client_id), where)


def test_the_loser_of_a_rotation_race_revokes_the_grant(driver, opendid):
    """The interleaving the racing test may or may not hit: both requests found the token live,
    one rotated it first; the other's rotation fails, which is a reuse."""
    endpoint = opendid.services.token_endpoint
    tokens = login_tokens(driver, "opendid-client")
    second = endpoint.find_refresh(tokens["refresh_token"])
    won = endpoint.refresh_opendid(tokens["refresh_token"])
    assert won is not None
    assert userinfo_status(driver, won["accessToken"]) == 200
    client = opendid.services.clients.get("opendid-client")
    identity = endpoint.refresh_identity(second)
    assert not endpoint._rotate(second, client, identity, "openid",
                                [("late-access", "access", 60), ("late-refresh", "refresh", 60)])
    assert userinfo_status(driver, won["accessToken"]) == 401
    assert refused(at_api(driver, won["refreshToken"]), "api")
    assert opendid.services.grants.active_token("late-refresh", "refresh") is None


def test_tokens_saved_for_a_revoked_grant_are_never_live(opendid):
    """A request that minted tokens before its grant was revoked (a reused code racing the
    redemption) cannot save them as live afterwards."""
    grants = opendid.services.grants
    assert grants.save_token("early-token", "access", "grant-x", "opendid-client", {}, 60)
    assert grants.revoke_grant("grant-x") == 1
    assert grants.active_token("early-token", "access") is None
    assert not grants.save_token("late-token", "access", "grant-x", "opendid-client", {}, 60)
    assert grants.active_token("late-token", "access") is None


def test_a_refresh_token_has_one_spelling(driver):
    """Variants of a live token are unknown tokens: refused, and nothing rotates or ends."""
    tokens = login_tokens(driver, "opendid-client")
    token = tokens["refresh_token"]
    head, payload, signature = token.split(".")
    for variant in (token + " ", " " + token, token + "=", f"{head}.{payload}.{signature}==",
                    token.upper(), token.replace(".", "%2E"), token + "\n"):
        assert refused(at_api(driver, variant), "api")
        assert refused(at_token(driver, variant, "opendid-client"), "token")
    assert userinfo_status(driver, tokens["access_token"]) == 200
    assert at_api(driver, token).status_code == 200

"""Token introspection (RFC 7662) over real HTTP: what an active token shows, that anything
inactive shows `{"active": false}` and nothing else, that only confidential clients may ask
(a public client's id alone is no authentication), and who may introspect whose tokens: any
confidential client (a resource server) an access token, only its own client a refresh token."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from conftest import SECRET, expire_token
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims
from tests.client_auth import post_as_client
from tests.test_refresh import at_token, login_tokens, pair, userinfo_status

INACTIVE = {"active": False}


def introspect(driver: LoginDriver, token: str, client_id: str, secret: str | None = SECRET,
               basic: bool = False, **extra: str) -> requests.Response:
    return post_as_client(driver.url("/api/v1/introspect"), {"token": token, **extra},
                          client_id, secret, basic)


def body(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.json())


def test_discovery_lists_the_introspection_endpoint(opendid):
    doc = requests.get(opendid.url + "/.well-known/openid-configuration", timeout=30).json()
    assert doc["introspection_endpoint"] == opendid.url + "/api/v1/introspect"
    assert doc["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post"]


@pytest.mark.parametrize("client_id, basic", [("standard-client", True),
                                              ("opendid-client", False)])
def test_an_active_access_token(driver, wallet, client_id, basic):
    before = int(time.time())
    tokens = login_tokens(driver, client_id)
    shown = body(introspect(driver, tokens["access_token"], client_id, basic=basic))
    claims = decode_jwt_claims(tokens["access_token"])
    assert shown == {"active": True, "sub": wallet.did, "client_id": client_id,
                     "token_type": "Bearer", "scope": "openid", "exp": shown["exp"],
                     "iat": shown["iat"]}
    assert before <= shown["iat"] <= int(time.time())
    assert abs(shown["exp"] - claims["exp"]) <= 1
    assert abs(shown["iat"] - claims["iat"]) <= 1


def test_an_active_refresh_token_for_its_own_client(driver, wallet):
    tokens = login_tokens(driver, "standard-client")
    shown = body(introspect(driver, tokens["refresh_token"], "standard-client",
                            token_type_hint="refresh_token"))
    assert shown["active"] is True
    assert (shown["sub"], shown["client_id"], shown["token_type"]) == (
        wallet.did, "standard-client", "refresh_token")
    assert abs(shown["exp"] - decode_jwt_claims(tokens["refresh_token"])["exp"]) <= 1


def test_a_wrong_hint_still_finds_the_token(driver):
    tokens = login_tokens(driver, "standard-client")
    shown = body(introspect(driver, tokens["access_token"], "standard-client",
                            token_type_hint="refresh_token"))
    assert shown["active"] is True and shown["token_type"] == "Bearer"


@pytest.mark.parametrize("owner, resource_server", [("standard-client", "es-client"),
                                                    ("public-client", "opendid-client")])
def test_a_resource_server_introspects_other_clients_access_tokens_not_refresh_tokens(
        driver, owner, resource_server):
    tokens = login_tokens(driver, owner)
    shown = body(introspect(driver, tokens["access_token"], resource_server))
    assert shown["active"] is True and shown["client_id"] == owner
    assert body(introspect(driver, tokens["refresh_token"], resource_server)) == INACTIVE


def test_the_owner_sees_its_refresh_token_active_another_client_does_not(driver):
    tokens = login_tokens(driver, "standard-client")
    assert body(introspect(driver, tokens["refresh_token"], "standard-client"))["active"]
    assert body(introspect(driver, tokens["refresh_token"], "es-client")) == INACTIVE
    assert body(introspect(driver, tokens["refresh_token"], "opendid-client")) == INACTIVE


@pytest.mark.parametrize("client_id", ["public-client", "bare-public-client"])
def test_public_clients_cannot_introspect(driver, client_id):
    """A public client's id is no secret: anyone could send it. Refused before the token is
    looked at, even its own token, by client_id alone or with any made-up secret."""
    tokens = login_tokens(driver, client_id)
    for attempt in (introspect(driver, tokens["access_token"], client_id, secret=None),
                    introspect(driver, tokens["access_token"], client_id, secret="x"),
                    introspect(driver, tokens["access_token"], client_id, secret="",
                               basic=True),
                    introspect(driver, tokens["access_token"], client_id, secret="x",
                               basic=True)):
        assert attempt.status_code == 401, attempt.text
        assert attempt.json()["error"] == "invalid_client"
        assert "active" not in attempt.json()


@pytest.mark.parametrize("attempt, status", [
    ({"secret": "wrong-secret"}, 401),
    ({"secret": "wrong-secret", "basic": True}, 401),
    ({"secret": SECRET.upper()}, 401),
    ({"secret": None}, 401),  # a confidential client's id without its secret
    ({"client_id": "no-such-client"}, 400),  # as at /token (authlib: 401 only with basic)
    ({"client_id": "no-such-client", "basic": True}, 401),
])
def test_wrong_client_credentials_learn_nothing(driver, attempt, status):
    tokens = login_tokens(driver, "standard-client")
    attempt = dict(attempt)
    client_id = attempt.pop("client_id", "standard-client")
    response = introspect(driver, tokens["access_token"], client_id, **attempt)
    assert (response.status_code, response.json()["error"]) == (status, "invalid_client")
    assert "active" not in response.json()


def test_inactive_tokens_show_active_false_and_nothing_else(driver):
    tokens = login_tokens(driver, "standard-client")
    # rotated: the old refresh token and nothing of it is live any more
    access1, refresh1 = pair(at_token(driver, tokens["refresh_token"], "standard-client"))
    assert body(introspect(driver, tokens["refresh_token"], "standard-client")) == INACTIVE
    assert body(introspect(driver, access1, "standard-client"))["active"] is True
    # an access token revoked alone
    requests.post(driver.url("/api/v1/revoke"), timeout=30, data={
        "token": access1, "client_id": "standard-client", "client_secret": SECRET})
    assert body(introspect(driver, access1, "standard-client")) == INACTIVE
    assert body(introspect(driver, refresh1, "standard-client"))["active"] is True
    # the grant revoked
    requests.post(driver.url("/api/v1/revoke"), timeout=30, data={
        "token": refresh1, "client_id": "standard-client", "client_secret": SECRET})
    for token in (refresh1, tokens["access_token"]):
        assert body(introspect(driver, token, "standard-client")) == INACTIVE


@pytest.mark.parametrize("token", ["", "x", "not-a-token", "a" * 4000, "é"])
def test_unknown_tokens_are_inactive(driver, token):
    assert body(introspect(driver, token, "standard-client")) == INACTIVE


@pytest.mark.parametrize("respell", [lambda t: t + " ", lambda t: t.upper(),
                                     lambda t: t + "=", lambda t: "\t" + t])
def test_a_respelled_token_is_inactive(driver, respell):
    tokens = login_tokens(driver, "standard-client")
    assert body(introspect(driver, respell(tokens["access_token"]),
                           "standard-client")) == INACTIVE
    assert body(introspect(driver, tokens["access_token"], "standard-client"))["active"]


def test_an_expired_token_is_inactive(driver, opendid):
    tokens = login_tokens(driver, "standard-client")
    for token in (tokens["access_token"], tokens["refresh_token"]):
        expire_token(opendid.services, token)
    assert body(introspect(driver, tokens["access_token"], "standard-client")) == INACTIVE
    assert body(introspect(driver, tokens["refresh_token"], "standard-client")) == INACTIVE


def test_bad_requests_get_400_and_reveal_nothing(driver):
    tokens = login_tokens(driver, "standard-client")
    auth = {"client_id": "standard-client", "client_secret": SECRET}
    twice = requests.post(driver.url("/api/v1/introspect"), timeout=30, data=[
        ("token", "junk"), ("token", tokens["access_token"]), *auth.items()])
    assert (twice.status_code, twice.json()["error"]) == (400, "invalid_request")
    missing = requests.post(driver.url("/api/v1/introspect"), data=auth, timeout=30)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    hint = introspect(driver, tokens["access_token"], "standard-client", token_type_hint="jwt")
    assert (hint.status_code, hint.json()["error"]) == (400, "unsupported_token_type")
    by_get = requests.get(driver.url("/api/v1/introspect"), timeout=30,
                          params={"token": tokens["access_token"], **auth})
    assert by_get.status_code == 405
    assert userinfo_status(driver, tokens["access_token"]) == 200

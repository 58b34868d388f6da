"""Token revocation (RFC 7009) over real HTTP, as a client and as an attacker would try it:
revoking a refresh token ends its grant, an access token only itself; another client's token,
an unknown or respelled token get 200 and change nothing; wrong client credentials get 401;
a duplicated or unsupported parameter gets 400; a revocation racing a refresh leaves no token
of the grant alive."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from conftest import SECRET
from opendid.devtools.login_driver import LoginDriver
from tests.client_auth import post_as_client
from tests.test_refresh import at_api, at_token, login_tokens, pair, refused, userinfo_status

PUBLIC = {"public-client", "bare-public-client"}


def revoke(driver: LoginDriver, token: str, client_id: str, secret: str | None = SECRET,
           basic: bool = False, **extra: str) -> requests.Response:
    """POST /api/v1/revoke authenticated as `client_id` (client_secret_post, or basic, or
    client_id alone for public clients and `secret=None`)."""
    return post_as_client(driver.url("/api/v1/revoke"), {"token": token, **extra}, client_id,
                          secret, basic, send_secret=client_id not in PUBLIC)


def ok(response: requests.Response) -> bool:
    return response.status_code == 200 and response.json() == {}


def error(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def still_alive(driver: LoginDriver, tokens: dict[str, Any], client_id: str) -> bool:
    """The grant is untouched: its access token works and its refresh token rotates."""
    return (userinfo_status(driver, tokens["access_token"]) == 200
            and at_token(driver, tokens["refresh_token"], client_id).status_code == 200)


def test_discovery_lists_the_revocation_endpoint(opendid):
    doc = requests.get(opendid.url + "/.well-known/openid-configuration", timeout=30).json()
    assert doc["revocation_endpoint"] == opendid.url + "/api/v1/revoke"
    assert doc["revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "none"]


# -- what a client revokes --------------------------------------------------------------------

@pytest.mark.parametrize("client_id, basic, hint", [
    ("standard-client", True, "refresh_token"),
    ("opendid-client", False, None),
    ("public-client", False, "refresh_token"),
    # a wrong hint: the server looks further (RFC 7009 §2.1)
    ("standard-client", False, "access_token"),
])
def test_revoking_a_refresh_token_ends_its_grant(driver, client_id, basic, hint):
    tokens = login_tokens(driver, client_id)
    extra = {"token_type_hint": hint} if hint else {}
    assert ok(revoke(driver, tokens["refresh_token"], client_id, basic=basic, **extra))
    assert userinfo_status(driver, tokens["access_token"]) == 401
    assert refused(at_token(driver, tokens["refresh_token"], client_id), "token")
    # revoking again, or the access token now, is still a plain 200
    assert ok(revoke(driver, tokens["refresh_token"], client_id, basic=basic))
    assert ok(revoke(driver, tokens["access_token"], client_id, basic=basic))


def test_revoking_a_refresh_token_at_opendids_endpoint_too(driver):
    tokens = login_tokens(driver, "opendid-client")
    assert ok(revoke(driver, tokens["refresh_token"], "opendid-client"))
    assert refused(at_api(driver, tokens["refresh_token"]), "api")


@pytest.mark.parametrize("client_id, hint", [("standard-client", "access_token"),
                                             ("public-client", None),
                                             ("opendid-client", "refresh_token")])
def test_revoking_an_access_token_revokes_it_alone(driver, client_id, hint):
    tokens = login_tokens(driver, client_id)
    extra = {"token_type_hint": hint} if hint else {}
    assert ok(revoke(driver, tokens["access_token"], client_id, **extra))
    assert userinfo_status(driver, tokens["access_token"]) == 401
    rotated = at_token(driver, tokens["refresh_token"], client_id)
    assert rotated.status_code == 200, rotated.text
    assert userinfo_status(driver, pair(rotated)[0]) == 200


def test_revoking_a_rotated_refresh_token_ends_the_grant(driver):
    """The client hands back an older refresh token of its grant: the grant ends all the same,
    including the tokens the rotation issued."""
    tokens = login_tokens(driver, "standard-client")
    access1, refresh1 = pair(at_token(driver, tokens["refresh_token"], "standard-client"))
    assert ok(revoke(driver, tokens["refresh_token"], "standard-client"))
    assert userinfo_status(driver, access1) == 401
    assert refused(at_token(driver, refresh1, "standard-client"), "token")


# -- what changes nothing ---------------------------------------------------------------------

@pytest.mark.parametrize("owner, presenter", [("standard-client", "es-client"),
                                              ("opendid-client", "standard-client"),
                                              ("standard-client", "public-client"),
                                              ("public-client", "bare-public-client")])
def test_another_clients_token_gets_200_and_stays_valid(driver, owner, presenter):
    """RFC 7009 §2.2: the presenter authenticates correctly as itself, but the token was not
    issued to it: the same answer as an invalid token, and nothing is revoked."""
    tokens = login_tokens(driver, owner)
    assert ok(revoke(driver, tokens["refresh_token"], presenter))
    assert ok(revoke(driver, tokens["access_token"], presenter))
    assert still_alive(driver, tokens, owner)


@pytest.mark.parametrize("attempt, status", [
    ({"secret": "wrong-secret"}, 401),
    ({"secret": "wrong-secret", "basic": True}, 401),
    ({"secret": SECRET.upper()}, 401),
    ({"secret": None}, 401),  # a confidential client's id alone, as a public client sends it
    ({"client_id": "no-such-client"}, 400),  # as at /token (authlib: 401 only with basic)
    ({"client_id": "no-such-client", "basic": True}, 401),
])
def test_wrong_client_credentials_are_refused_and_change_nothing(driver, attempt, status):
    tokens = login_tokens(driver, "standard-client")
    attempt = dict(attempt)
    client_id = attempt.pop("client_id", "standard-client")
    for token in (tokens["refresh_token"], tokens["access_token"]):
        response = revoke(driver, token, client_id, **attempt)
        assert error(response) == (status, "invalid_client"), response.text
    assert still_alive(driver, tokens, "standard-client")


@pytest.mark.parametrize("respell", [
    lambda t: t + " ", lambda t: " " + t, lambda t: t + "\n", lambda t: t.upper(),
    lambda t: t.swapcase(), lambda t: t + "=", lambda t: t[:-1],
    lambda t: t.replace(".", ". ", 1),
])
def test_a_respelled_token_is_a_different_unknown_token(driver, respell):
    tokens = login_tokens(driver, "standard-client")
    for token in (tokens["refresh_token"], tokens["access_token"]):
        assert ok(revoke(driver, respell(token), "standard-client"))
    assert still_alive(driver, tokens, "standard-client")


def test_unknown_and_garbage_tokens_get_200(driver):
    for token in ("", "x", "not-a-token", "a" * 4000, "é"):
        assert ok(revoke(driver, token, "standard-client"))


def test_a_duplicated_token_parameter_is_refused(driver):
    """Which one was meant? Neither is revoked (RFC 6749 §3.2: parameters appear once)."""
    tokens = login_tokens(driver, "standard-client")
    for second in ("junk", tokens["access_token"]):
        response = requests.post(driver.url("/api/v1/revoke"), timeout=30, data=[
            ("token", tokens["refresh_token"]), ("token", second),
            ("client_id", "standard-client"), ("client_secret", SECRET)])
        assert error(response) == (400, "invalid_request")
    response = requests.post(driver.url("/api/v1/revoke"), timeout=30, data=[
        ("token", tokens["refresh_token"]), ("token_type_hint", "refresh_token"),
        ("token_type_hint", "access_token"), ("client_id", "standard-client"),
        ("client_secret", SECRET)])
    assert error(response) == (400, "invalid_request")
    assert still_alive(driver, tokens, "standard-client")


@pytest.mark.parametrize("hint", ["id_token", "ACCESS_TOKEN", "refresh_token ", "code"])
def test_an_unsupported_hint_is_refused_and_changes_nothing(driver, hint):
    tokens = login_tokens(driver, "standard-client")
    response = revoke(driver, tokens["refresh_token"], "standard-client", token_type_hint=hint)
    assert error(response) == (400, "unsupported_token_type")
    assert still_alive(driver, tokens, "standard-client")


def test_a_token_outside_the_body_or_missing_is_refused(driver):
    tokens = login_tokens(driver, "standard-client")
    in_query = requests.post(driver.url("/api/v1/revoke?token=" + tokens["refresh_token"]),
                             data={"client_id": "standard-client", "client_secret": SECRET},
                             timeout=30)
    assert error(in_query) == (400, "invalid_request")
    as_json = requests.post(driver.url("/api/v1/revoke"), timeout=30, json={
        "token": tokens["refresh_token"], "client_id": "standard-client",
        "client_secret": SECRET})
    assert 400 <= as_json.status_code < 500
    by_get = requests.get(driver.url("/api/v1/revoke"), timeout=30, params={
        "token": tokens["refresh_token"], "client_id": "standard-client",
        "client_secret": SECRET})
    assert by_get.status_code == 405
    assert still_alive(driver, tokens, "standard-client")


# -- racing a refresh -------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["token", "api"])
def test_a_revocation_racing_a_refresh_leaves_nothing_alive(driver, where):
    """Whichever commits first, no token of the grant survives: a refresh that wins hands out
    tokens the revocation then ends; one that loses is refused."""
    client_id = "standard-client" if where == "token" else "opendid-client"
    for _ in range(3):
        tokens = login_tokens(driver, client_id)
        start = threading.Barrier(2)

        def run(job: str, tokens: dict[str, Any] = tokens,
                start: threading.Barrier = start) -> requests.Response:
            start.wait(timeout=30)
            if job == "revoke":
                return revoke(driver, tokens["refresh_token"], client_id)
            if where == "api":
                return at_api(driver, tokens["refresh_token"])
            return at_token(driver, tokens["refresh_token"], client_id)

        with ThreadPoolExecutor(2) as pool:
            revoked, refreshed = pool.map(run, ["revoke", "refresh"])
        assert ok(revoked)
        assert userinfo_status(driver, tokens["access_token"]) == 401
        if refreshed.status_code == 200:
            access, new_refresh = pair(refreshed)
            assert userinfo_status(driver, access) == 401
            assert refused(at_token(driver, new_refresh, client_id), "token")
        else:
            assert refused(refreshed, where)


@pytest.mark.parametrize("path", ["/api/v1/revoke", "/api/v1/introspect", "/api/v1/token"])
@pytest.mark.parametrize("header", [
    "Basic <\x96\x80ë¢IÕV",  # not ASCII: base64 cannot even start
    "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),  # base64 of bytes that are no text
    "Basic " + base64.b64encode("standard-client:é".encode("latin-1")).decode(),
])
def test_a_basic_header_that_is_not_base64_text_is_invalid_client_not_a_500(driver, path,
                                                                           header):
    """Found by the HTTP fuzzer at /revoke; authlib's basic parser raised a ValueError, which
    /token had too. Such a header is no basic credentials: 401 `invalid_client`, no change."""
    tokens = login_tokens(driver, "standard-client")
    form = {"token": tokens["refresh_token"], "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"]}
    response = requests.post(driver.url(path), data=form, timeout=30,
                             headers={"Authorization": header})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert still_alive(driver, tokens, "standard-client")

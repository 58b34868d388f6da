"""Userinfo over real HTTP (RFC 6750 §2, OIDC Core §5.3), as a client and as an attacker: the
access token in the Authorization header (GET or POST) or in a POST form body, nowhere else and
never twice; every refusal is a JSON error with `WWW-Authenticate: Bearer error=...`."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from conftest import SECRET, STANDARD_REDIRECT
from opendid.devtools.login_driver import LoginDriver, pkce_pair

FORM = "application/x-www-form-urlencoded"


def tokens(driver: LoginDriver, scope: str = "openid email profile") -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = driver.login(client_id="standard-client", redirect_uri=STANDARD_REDIRECT,
                        response_type="code", scope=scope, state="s", nonce="n",
                        code_challenge=challenge)["code"]
    response = redeem(driver, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def redeem(driver: LoginDriver, code: str, verifier: str) -> requests.Response:
    return requests.post(driver.url("/api/v1/token"), timeout=30, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": STANDARD_REDIRECT,
        "client_id": "standard-client", "client_secret": SECRET, "code_verifier": verifier})


def call(driver: LoginDriver, method: str = "GET", query: dict[str, str] | None = None,
         header: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": header} if header is not None else {}
    return requests.request(method, driver.url("/api/v1/userinfo"), params=query,
                            headers=headers, timeout=30, **kwargs)


def refused(response: requests.Response, error: str) -> None:
    """A refusal as RFC 6750 §3 has it: status, JSON error, the same error in the header."""
    status = 400 if error == "invalid_request" else 401
    assert (response.status_code, response.json()["error"]) == (status, error), response.text
    assert response.headers["WWW-Authenticate"] == f'Bearer error="{error}"'
    assert "sub" not in response.json()


@pytest.fixture()
def access(driver: LoginDriver) -> str:
    return str(tokens(driver)["access_token"])


# -- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_token_in_the_authorization_header(driver, provisioned, access, method):
    response = call(driver, method, header=f"Bearer {access}")
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == provisioned["user"]["did"]
    assert response.json()["email"] == "some@example.org"
    assert response.headers["Cache-Control"] == "no-store"
    # the auth scheme is case-insensitive (RFC 7235 §2.1)
    assert call(driver, method, header=f"bearer {access}").status_code == 200


def test_token_in_a_post_form_body(driver, provisioned, access):
    """RFC 6750 §2.2, what OIDF's userinfo-post-body module sends."""
    response = call(driver, "POST", data={"access_token": access})
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == provisioned["user"]["did"]
    response = requests.post(driver.url("/api/v1/userinfo"), data=f"access_token={access}",
                             headers={"Content-Type": f"{FORM}; charset=utf-8"}, timeout=30)
    assert response.status_code == 200, response.text


# -- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_token_in_the_query_is_refused_even_beside_a_valid_header(driver, access, method):
    """A token in a URL leaks into logs, history and Referer headers (RFC 6750 §5.3)."""
    refused(call(driver, method, query={"access_token": access}), "invalid_request")
    refused(call(driver, method, query={"access_token": access}, header=f"Bearer {access}"),
            "invalid_request")
    refused(call(driver, method, query={"access_token": ""}, header=f"Bearer {access}"),
            "invalid_request")
    assert call(driver, method, header=f"Bearer {access}").status_code == 200  # still live


@pytest.mark.parametrize("header", ["Bearer {t}", "bearer {t}", "Bearer x", "Basic eDp5"])
def test_token_in_header_and_body_is_invalid_request(driver, access, header):
    """One method per request (RFC 6750 §2): never a choice between two tokens."""
    response = call(driver, "POST", header=header.format(t=access), data={"access_token": access})
    refused(response, "invalid_request")
    assert call(driver, "POST", data={"access_token": access}).status_code == 200


def test_two_tokens_in_the_body_are_invalid_request(driver, access):
    refused(call(driver, "POST", data=[("access_token", access), ("access_token", access)]),
            "invalid_request")


def test_a_body_token_counts_only_in_a_post_form(driver, access):
    """Not in a GET body, a JSON body or a multipart body (RFC 6750 §2.2: single-part,
    application/x-www-form-urlencoded, not GET)."""
    refused(call(driver, "GET", data={"access_token": access}), "invalid_token")
    refused(call(driver, "POST", json={"access_token": access}), "invalid_token")
    refused(call(driver, "POST", files={"access_token": (None, access)}), "invalid_token")
    assert call(driver, "POST", data={"access_token": access}).status_code == 200


def test_the_token_spelled_otherwise_is_refused(driver, access):
    for spelled in (access.upper(), access + "x", access[:-1], access + "=",
                    access.replace(".", "..")):
        refused(call(driver, header=f"Bearer {spelled}"), "invalid_token")
        refused(call(driver, "POST", data={"access_token": spelled}), "invalid_token")
    for header in (f"Bearer  {access}", f"Bearer\t{access}", f"Bearer{access}",
                   f"Token {access}", access, f"Bearer {access} x"):
        refused(call(driver, header=header), "invalid_token")
    refused(call(driver, "POST", data={"access_token": f" {access}"}), "invalid_token")


@pytest.mark.parametrize("kwargs", [{}, {"header": "Bearer nope"}, {"header": "Basic eDp5"},
                                    {"header": "Bearer"}, {"header": ""}])
def test_no_valid_token_is_invalid_token(driver, kwargs):
    refused(call(driver, **kwargs), "invalid_token")


def test_a_revoked_token_is_401_with_the_header(driver):
    """Redeeming the code again revokes the grant (RFC 6749 §4.1.2): its access token too, in
    the header and in a form body."""
    verifier, challenge = pkce_pair()
    code = driver.login(client_id="standard-client", redirect_uri=STANDARD_REDIRECT,
                        response_type="code", scope="openid email", state="s", nonce="n",
                        code_challenge=challenge)["code"]
    access = redeem(driver, code, verifier).json()["access_token"]
    assert call(driver, header=f"Bearer {access}").status_code == 200
    assert redeem(driver, code, verifier).status_code == 400
    refused(call(driver, header=f"Bearer {access}"), "invalid_token")
    refused(call(driver, "POST", data={"access_token": access}), "invalid_token")


def test_a_refresh_token_is_not_an_access_token(driver):
    refresh = tokens(driver)["refresh_token"]
    refused(call(driver, header=f"Bearer {refresh}"), "invalid_token")
    refused(call(driver, "POST", data={"access_token": refresh}), "invalid_token")

"""Authorization requests as standard clients send them, over real HTTP against the dev chain:
by POST with a form body (OIDC Core 3.1.2.1) exactly as by GET, and nothing else by POST;
response types in any order (OAuth 2.0 Multiple Response Types §2); the issuer (RFC 9207) on
every authorization response of a standard client, success and error, and on none of an
OpenDID-style client's (their contract)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwk, jwt

from conftest import OPENDID_REDIRECT, SECRET, STANDARD_REDIRECT
from opendid.devtools.login_driver import LoginDriver, pkce_pair, result_params

STANDARD = {"client_id": "standard-client", "redirect_uri": STANDARD_REDIRECT,
            "response_type": "code", "scope": "openid", "state": "s1", "nonce": "n1"}
OPENDID = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT,
           "response_type": "code", "scope": "openid", "state": "s2", "nonce": "n2"}
FORM = "application/x-www-form-urlencoded"


def issuer(opendid: Any) -> str:
    return requests.get(opendid.url + "/.well-known/openid-configuration",
                        timeout=30).json()["issuer"]


def post_authorize(driver: LoginDriver, data: Any = None, **kwargs: Any) -> requests.Response:
    return driver.http.post(driver.url("/api/v1/authorize"), data=data, allow_redirects=False,
                            timeout=30, **kwargs)


def finish_login(driver: LoginDriver, started: requests.Response) -> dict[str, str]:
    assert started.status_code == 302 and started.headers["Location"] == "/", started.text
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204, done.text
    return result_params(done.headers["Location"])


def redeem(driver: LoginDriver, code: str, redirect: str, client_id: str,
           verifier: str | None = None) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
            "client_id": client_id, "client_secret": SECRET}
    if verifier:
        form["code_verifier"] = verifier
    return requests.post(driver.url("/api/v1/token"), data=form, timeout=30)


def error_params(response: requests.Response, redirect: str) -> tuple[str, dict[str, str]]:
    """Where (query or fragment) a redirected error put its parameters, and them."""
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(redirect + ("?" if "?" not in redirect else "&")) or \
        location.startswith(redirect + "#"), location
    parts = urlsplit(location)
    where = "fragment" if parts.fragment else "query"
    return where, {k: v[0] for k, v in parse_qs(parts.fragment or parts.query).items()}


# -- POST authorization requests --------------------------------------------------------------


def test_a_post_authorization_request_logs_in_like_a_get(driver, opendid):
    verifier, challenge = pkce_pair()
    params = {**STANDARD, "code_challenge": challenge}
    started = post_authorize(driver, params)
    assert started.headers["Set-Cookie"].startswith("opendid=")
    result = finish_login(driver, started)
    assert result["state"] == "s1" and result["iss"] == issuer(opendid)
    tokens = redeem(driver, result["code"], STANDARD_REDIRECT, "standard-client", verifier)
    assert tokens.status_code == 200, tokens.text


@pytest.mark.parametrize("change", [
    {"client_id": "nobody"},  # error page, no redirect
    {"redirect_uri": "https://evil.example.org/cb"},
    {"response_type": "id_token", "nonce": ""},  # redirected errors: the same Location
    {"response_type": "token"},
    {"response_type": ""},
    {"response_mode": "QUERY"},
    {"prompt": "none login"},
    {"request": "eyJhbGciOiJub25lIn0.e30."},
    {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "token"},
    {"response_mode": "form_post", "response_type": "id_token", "nonce": ""},  # the form page
])
def test_post_and_get_give_the_same_answer(driver, change):
    params = {**STANDARD, **change}
    by_get = driver.authorize(**params)
    by_post = post_authorize(driver, params)
    assert by_get.status_code in (200, 302, 400)
    assert (by_post.status_code, by_post.headers.get("Location"), by_post.text) == \
        (by_get.status_code, by_get.headers.get("Location"), by_get.text)
    assert "Set-Cookie" not in by_post.headers  # an error starts no login


@pytest.mark.parametrize("body, headers", [
    (json.dumps(STANDARD), {"Content-Type": "application/json"}),
    ("&".join(f"{k}={v}" for k, v in STANDARD.items()), {"Content-Type": "text/plain"}),
    (None, {}),  # no body at all
])
def test_a_post_without_a_form_body_is_a_clear_400(driver, body, headers):
    response = post_authorize(driver, body, headers=headers)
    assert response.status_code == 400
    assert f"needs a {FORM} body" in response.text
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers


def test_multipart_is_not_form_serialization(driver):
    """werkzeug would read these fields as a form: without the check this starts a login."""
    fields = {k: (None, v) for k, v in STANDARD.items()}
    response = post_authorize(driver, files=fields)
    assert response.request.headers["Content-Type"].startswith("multipart/form-data")
    assert response.status_code == 400 and f"needs a {FORM} body" in response.text
    assert "Set-Cookie" not in response.headers
    control = post_authorize(driver, STANDARD)  # the same fields form-encoded: a login
    assert control.status_code == 302 and control.headers["Location"] == "/"


def test_a_post_reads_the_body_not_the_query(driver):
    """Parameters in a POST's query are not the request: a POST with a form body that lacks
    them is refused as incomplete, whatever the query says."""
    url = driver.url("/api/v1/authorize?" + "&".join(f"{k}={v}" for k, v in STANDARD.items()))
    response = driver.http.post(url, data={"state": "x"}, allow_redirects=False, timeout=30)
    assert response.status_code == 400 and "Invalid client_id" in response.text


def test_a_form_content_type_with_a_charset_is_a_form(driver):
    response = post_authorize(driver, "&".join(f"{k}={v}" for k, v in STANDARD.items()),
                              headers={"Content-Type": f"{FORM}; charset=UTF-8"})
    assert response.status_code == 302 and response.headers["Location"] == "/"


# -- response type order -------------------------------------------------------------------------


@pytest.mark.parametrize("send", ["get", "post"])
def test_token_id_token_is_id_token_token(driver, opendid, send):
    from authlib.oidc.core.util import create_half_hash

    params = {**STANDARD, "response_type": "token id_token"}
    started = driver.authorize(**params) if send == "get" else post_authorize(driver, params)
    result = finish_login(driver, started)
    assert set(result) == {"id_token", "access_token", "token_type", "expires_in", "state",
                           "iss"}
    keys = jwk.KeySet.import_key_set(requests.get(opendid.url + "/.well-known/jwks.json",
                                                  timeout=30).json())
    claims = jwt.decode(result["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["nonce"] == "n1" and claims["aud"] == "standard-client"
    assert claims["at_hash"] == create_half_hash(result["access_token"], "RS256").decode()


@pytest.mark.parametrize("response_type", ["token id_token", "id_token token"])
def test_errors_name_the_canonical_response_type(driver, response_type):
    """es-client may use the code flow only: either spelling is refused under one name."""
    _, params = error_params(driver.authorize(**{**STANDARD, "client_id": "es-client",
                                                 "response_type": response_type}),
                             STANDARD_REDIRECT)
    assert params["error"] == "unauthorized_client"
    assert params["error_description"] == \
        "This client may not use response_type id_token token"


@pytest.mark.parametrize("response_type", ["id_token  token", " id_token token", "token",
                                           "id_token id_token", "code id_token",
                                           "token id_token code", "ID_TOKEN token"])
def test_other_spellings_are_not_a_response_type(driver, response_type):
    _, params = error_params(driver.authorize(**{**STANDARD,
                                                     "response_type": response_type}),
                                 STANDARD_REDIRECT)
    assert params["error"] == "unsupported_response_type" and params["state"] == "s1"


# -- RFC 9207: iss on every authorization response of a standard client -----------------------


def test_discovery_announces_the_iss_parameter(opendid):
    doc = requests.get(opendid.url + "/.well-known/openid-configuration", timeout=30).json()
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["response_modes_supported"] == ["query", "fragment", "form_post"]


def test_iss_on_a_code_response_of_a_standard_client_not_of_an_opendid_one(driver, opendid):
    standard = driver.login(**STANDARD)
    assert standard["iss"] == issuer(opendid) == opendid.url
    original = LoginDriver(driver.base_url, driver.wallet, driver.chain).login(**OPENDID)
    assert set(original) == {"code", "state"}  # OpenDID's contract, unchanged


@pytest.mark.parametrize("change, error, where", [
    ({"response_type": "token"}, "unsupported_response_type", "query"),
    ({"response_type": ""}, "invalid_request", "query"),
    ({"response_type": "id_token", "nonce": ""}, "invalid_request", "fragment"),
    ({"client_id": "es-client", "response_type": "id_token"}, "unauthorized_client",
     "fragment"),
    ({"response_mode": "fragment", "code_challenge_method": "plain", "code_challenge": "x"},
     "invalid_request", "fragment"),
    ({"prompt": "bogus"}, "invalid_request", "query"),
    ({"max_age": "-1"}, "invalid_request", "query"),
    ({"request_uri": "https://evil.example.org/r"}, "request_uri_not_supported", "query"),
    ({"client_id": "public-client"}, "invalid_request", "query"),  # PKCE required
])
def test_iss_on_every_error_of_a_standard_client(driver, opendid, change, error, where):
    params = {**STANDARD, **change}
    got, result = error_params(driver.authorize(**{k: v for k, v in params.items() if v}),
                               STANDARD_REDIRECT)
    assert (got, result["error"], result["state"]) == (where, error, "s1")
    assert result["iss"] == issuer(opendid)


@pytest.mark.parametrize("change, error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "id_token", "nonce": ""}, "invalid_request"),
    ({"client_id": "code-only-client", "response_type": "id_token"}, "unauthorized_client"),
])
def test_no_iss_on_errors_of_an_opendid_style_client(driver, change, error):
    params = {**OPENDID, **change}
    got, result = error_params(driver.authorize(**{k: v for k, v in params.items() if v}),
                               OPENDID_REDIRECT)
    assert (got, result["error"]) == ("query", error)
    assert set(result) == {"error", "error_description", "state"}


def test_iss_on_a_cancelled_login(driver, opendid):
    assert driver.authorize(**STANDARD).status_code == 302
    cancelled = driver.http.get(driver.url("/login/cancel"), allow_redirects=False, timeout=30)
    _, result = error_params(cancelled, STANDARD_REDIRECT)
    assert result["error"] == "access_denied" and result["iss"] == issuer(opendid)
    assert driver.authorize(**OPENDID).status_code == 302
    cancelled = driver.http.get(driver.url("/login/cancel"), allow_redirects=False, timeout=30)
    _, result = error_params(cancelled, OPENDID_REDIRECT)
    assert set(result) == {"error", "error_description", "state"}

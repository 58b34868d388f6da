"""CORS over real HTTP: discovery and JWKS for any origin; token, userinfo and revocation for
the origins of registered redirect URIs only, compared exactly as browsers send them (a lookalike
origin gets no CORS headers and its preflight a 403); the login endpoints never; clients added
while the service runs count at once."""

from __future__ import annotations

import pytest
import requests

from conftest import SECRET, STANDARD_REDIRECT
from opendid.store.clients import ClientRecord
from opendid.web.cors import origin_of

REGISTERED = "http://127.0.0.1:1607"  # STANDARD_REDIRECT's origin
CLIENT_PATHS = {"/api/v1/token": "POST", "/api/v1/userinfo": "GET", "/api/v1/revoke": "POST"}
PUBLIC_PATHS = ["/.well-known/openid-configuration", "/.well-known/jwks.json"]
LOOKALIKES = [
    "http://127.0.0.1:1608",  # another port
    "https://127.0.0.1:1607",  # another scheme
    "http://127.0.0.1",  # the default port is another port
    "http://127.0.0.1:1607.evil.example",  # the registered one as a prefix
    "http://evil.example#http://127.0.0.1:1607",
    "http://127.0.0.1:1607/",  # not an origin's spelling
    "http://127.0.0.1:1607/cb",
    "HTTP://127.0.0.1:1607",  # browsers send lower case only
    "http://127.0.0.1.:1607",  # the same host to DNS, another origin to a browser
    "http://127.0.0.1:1607:1607",
    "null",  # sandboxed frames, file: pages, some redirects
    "*",
    "",
]


def preflight(url: str, origin: str, method: str = "POST",
              headers: str = "authorization, content-type") -> requests.Response:
    return requests.options(url, timeout=30, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def test_registered_origins_are_browser_origins():
    assert STANDARD_REDIRECT.startswith(REGISTERED + "/")
    assert origin_of("http://127.0.0.1:1607/cb") == REGISTERED
    assert origin_of("HTTPS://App.Example:443/cb?x=1") == "https://app.example"
    assert origin_of("http://app.example:80/") == "http://app.example"
    assert origin_of("https://app.example:8443/") == "https://app.example:8443"
    assert origin_of("http://[::1]:3000/cb") == "http://[::1]:3000"
    assert origin_of("com.example.app:/callback") is None  # a native app: no web origin
    assert origin_of("http://app.example:99999/") is None  # no such port
    assert origin_of("ftp://app.example/") is None


@pytest.mark.parametrize("path", PUBLIC_PATHS)
@pytest.mark.parametrize("origin", ["https://any.example", REGISTERED, "null"])
def test_discovery_and_jwks_are_readable_from_any_origin(opendid, path, origin):
    response = requests.get(opendid.url + path, headers={"Origin": origin}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    answered = preflight(opendid.url + path, origin, "GET")
    assert answered.status_code == 204
    assert answered.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in answered.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in answered.headers


@pytest.mark.parametrize("path, method", CLIENT_PATHS.items())
def test_preflight_from_a_registered_origin(opendid, path, method):
    response = preflight(opendid.url + path, REGISTERED, method)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == REGISTERED
    assert method in response.headers["Access-Control-Allow-Methods"].split(", ")
    assert {"authorization", "content-type"} <= {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert "Origin" in response.headers["Vary"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers  # no cookies needed


@pytest.mark.parametrize("path, method", CLIENT_PATHS.items())
@pytest.mark.parametrize("origin", LOOKALIKES)
def test_preflight_from_any_other_origin_is_refused(opendid, path, method, origin):
    response = preflight(opendid.url + path, origin, method)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_token_and_revocation_answer_a_registered_origin(driver):
    from tests.test_refresh import login_tokens

    tokens = login_tokens(driver, "standard-client")
    refreshed = requests.post(driver.url("/api/v1/token"), timeout=30,
                              headers={"Origin": REGISTERED},
                              data={"grant_type": "refresh_token",
                                    "refresh_token": tokens["refresh_token"],
                                    "client_id": "standard-client", "client_secret": SECRET})
    assert refreshed.status_code == 200
    assert refreshed.headers["Access-Control-Allow-Origin"] == REGISTERED
    assert "Origin" in refreshed.headers["Vary"]
    revoked = requests.post(driver.url("/api/v1/revoke"), timeout=30,
                            headers={"Origin": REGISTERED},
                            data={"token": refreshed.json()["refresh_token"],
                                  "client_id": "standard-client", "client_secret": SECRET})
    assert revoked.status_code == 200
    assert revoked.headers["Access-Control-Allow-Origin"] == REGISTERED


@pytest.mark.parametrize("origin", [REGISTERED, "http://127.0.0.1:1608", "null"])
def test_userinfo_errors_are_readable_by_registered_origins_only(opendid, origin):
    response = requests.get(opendid.url + "/api/v1/userinfo", timeout=30,
                            headers={"Origin": origin, "Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert "Origin" in response.headers["Vary"]
    if origin == REGISTERED:
        assert response.headers["Access-Control-Allow-Origin"] == REGISTERED
        assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]
    else:
        assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("origin", LOOKALIKES[:4])
def test_a_lookalike_origin_gets_no_cors_headers_on_the_request_itself(opendid, origin):
    response = requests.post(opendid.url + "/api/v1/token", timeout=30,
                             headers={"Origin": origin}, data={"grant_type": "nope"})
    assert response.status_code in (400, 401)
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("path, method", [("/api/v1/authorize", "GET"),
                                          ("/api/v1/challenge", "POST"),
                                          ("/api/v1/credentials", "POST"),
                                          ("/api/v1/refresh", "POST"),
                                          ("/api/v1/introspect", "POST"),
                                          ("/", "GET")])
def test_login_and_server_side_endpoints_offer_no_cors(opendid, path, method):
    """The login page's API and the provider's session cookie stay same-origin; introspection
    needs a client secret, which no browser app holds."""
    response = preflight(opendid.url + path, REGISTERED, method)
    assert "Access-Control-Allow-Origin" not in response.headers
    plain = requests.get(opendid.url + path, headers={"Origin": REGISTERED}, timeout=30,
                         allow_redirects=False)
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_a_client_registered_at_run_time_counts_at_once(opendid):
    """Clients added with `opendid clients add` reach the store while the service runs: their
    origins are allowed at once, and no longer once the client is removed."""
    origin = "https://spa.cors-test.example"
    clients = opendid.services.clients
    assert preflight(opendid.url + "/api/v1/token", origin).status_code == 403
    clients.upsert(ClientRecord("cors-spa", None, [origin + "/callback"],
                                id_token_alg="RS256"), source="cli")
    try:
        response = preflight(opendid.url + "/api/v1/token", origin)
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
    finally:
        clients.delete("cors-spa")
    assert preflight(opendid.url + "/api/v1/token", origin).status_code == 403

"""Every answer, whatever produced it, carries the same security headers: the CSP that keeps
scripts and styles to OpenDID's own files and forbids framing, nosniff, no referrer, no frames.
Token answers are not cached (RFC 6749 §5.1). Checked over real HTTP, on the raw headers, so a
header that is missing, changed, weakened or sent twice fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from conftest import OPENDID_REDIRECT, SECRET, bind_server, serve_apps, write_test_config
from opendid.application import create_app
from opendid.devtools.devchain import free_port
from opendid.devtools.login_driver import result_params
from opendid.kilt.chain import ChainClient

# Written out, not imported from opendid.web.errors: weakening the policy there must fail here.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}


def assert_security_headers(response: requests.Response, status: int,
                            content_type: str | None = None) -> None:
    where = f"{response.request.method} {response.url}"
    assert response.status_code == status, (where, response.text[:200])
    if content_type is not None:
        assert response.headers.get("Content-Type", "").startswith(content_type), where
    for name, value in SECURITY_HEADERS.items():
        assert response.raw.headers.getlist(name) == [value], (where, name)


def call(url: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, url + path, allow_redirects=False, timeout=30, **kwargs)


@pytest.mark.parametrize("method, path, kwargs, status, content_type", [
    ("GET", "/", {}, 200, "text/html"),  # the login page, no login in progress
    ("GET", "/login/progress?step=session&mode=credential", {}, 200, "text/html"),  # partial
    ("POST", "/login/wallets", {"data": {"wallets": "[]", "mode": "did"}}, 200, "text/html"),
    ("GET", "/login/failure?reason=cancelled", {}, 200, "text/html"),
    ("GET", "/login/cancel", {}, 400, "text/html"),  # error page: no login to cancel
    ("GET", "/api/v1/authorize?client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F"
     "&response_type=code", {}, 400, "text/html"),  # error page instead of a redirect
    ("GET", "/api/v1/authorize?" + "&".join(f"{k}={v}" for k, v in CODE.items()), {}, 302,
     None),
    ("GET", "/.well-known/openid-configuration", {}, 200, "application/json"),
    ("GET", "/.well-known/jwks.json", {}, 200, "application/json"),
    ("GET", "/api/v1/endpoint", {}, 200, "application/json"),
    ("GET", "/api/v1/challenge", {}, 401, "text/plain"),  # no session
    ("POST", "/api/v1/refresh", {"json": {"refreshToken": "nope"}}, 401, "text/plain"),
    ("GET", "/api/v1/userinfo", {}, 401, "application/json"),
    ("GET", "/static/css/opendid.css", {}, 200, "text/css"),
    ("GET", "/static/js/kilt-bridge.js", {}, 200, "text/javascript"),
    ("GET", "/no/such/page", {}, 404, "text/plain"),
    ("DELETE", "/api/v1/token", {}, 405, "text/plain"),
    ("OPTIONS", "/api/v1/token", {}, 200, None),
    ("POST", "/api/v1/refresh", {"data": b"x" * (65 * 1024),
                                   "headers": {"Content-Type": "application/json"}}, 413,
     "text/plain"),
])
def test_every_kind_of_answer_has_the_security_headers(opendid, method, path, kwargs, status,
                                                       content_type):
    assert_security_headers(call(opendid.url, method, path, **kwargs), status, content_type)


def test_a_whole_login_has_them_at_every_step_and_tokens_are_not_cached(opendid, driver):
    started = driver.authorize(**CODE)
    assert_security_headers(started, 302)
    assert_security_headers(driver.http.get(driver.url("/"), timeout=30), 200, "text/html")
    assert_security_headers(driver.http.get(driver.url("/api/v1/challenge"), timeout=30), 200,
                            "application/json")
    assert_security_headers(driver.open_session(), 200, "text/plain")
    assert_security_headers(driver.http.get(driver.url("/api/v1/credentials"), timeout=30), 200,
                            "application/json")
    driver.fetch_request()
    done = driver.submit()
    assert_security_headers(done, 204)  # the page follows its Location

    form = {"grant_type": "authorization_code", "code": result_params(done.headers["Location"])
            ["code"], "redirect_uri": OPENDID_REDIRECT, "client_id": "opendid-client",
            "client_secret": SECRET}
    tokens = call(opendid.url, "POST", "/api/v1/token", data=form)
    assert_security_headers(tokens, 200, "application/json")
    assert "id_token" in tokens.json()
    refreshed = call(opendid.url, "POST", "/api/v1/refresh",
                     json={"refreshToken": tokens.json()["refresh_token"]})
    assert_security_headers(refreshed, 200, "application/json")
    assert refreshed.raw.headers.getlist("Cache-Control") == ["no-store"]
    reused = call(opendid.url, "POST", "/api/v1/token", data=form)  # revokes the grant
    assert_security_headers(reused, 400, "application/json")
    for answer in (tokens, reused):
        assert answer.raw.headers.getlist("Cache-Control") == ["no-store"]
        assert answer.raw.headers.getlist("Pragma") == ["no-cache"]


def test_a_cancelled_login_redirects_with_them(opendid, driver):
    driver.authorize(**CODE)
    assert_security_headers(driver.http.get(driver.url("/login/cancel"), allow_redirects=False,
                                            timeout=30), 302)


@pytest.fixture()
def broken_site(provisioned, tmp_path) -> Iterator[str]:
    """OpenDID whose chain is a closed port (503s), with one route that fails as a bug would."""
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    chain = ChainClient(f"ws://127.0.0.1:{free_port()}", timeout=2)
    app = create_app(config, instance_path=tmp_path / "instance", chain=chain)

    @app.get("/test-only/bug")
    def bug() -> str:
        raise RuntimeError("a bug")

    server.app = app
    with serve_apps(server):
        yield url
    chain.close()


def test_chain_failures_and_bugs_have_them_too(broken_site):
    assert_security_headers(call(broken_site, "GET", "/api/v1/health"), 503, "application/json")
    did = "did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTBZXKnWBcQqTh6H"
    assert_security_headers(call(broken_site, "GET", f"/api/v1/did-key/{did}"), 503,
                            "text/plain")
    assert_security_headers(call(broken_site, "GET", "/test-only/bug"), 500, "text/plain")

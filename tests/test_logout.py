"""RP-initiated logout 1.0 at `/api/v1/logout` over real HTTP: the provider session ends, the user
goes back only to a registered `post_logout_redirect_uri` (with `state`), a link without a valid
hint of the logged-in user needs the user's confirmation, and bad input changes nothing."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from html import unescape

import pytest
import requests
import yaml

from conftest import SECRET, STANDARD_REDIRECT, write_test_config
from opendid.config import load_config
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims
from opendid.services import build_services
from opendid.store.clients import ClientRecord
from tests.test_sso import (
    COOKIE,
    STANDARD,
    at_client,
    fresh,
    hint_for,
    redeem,
    requirement,
    silent,
)

LOGOUT_TARGET = "http://127.0.0.1:1607/logged-out"


def login(driver: LoginDriver) -> str:
    """A wallet login of standard-client; its id_token."""
    result = driver.login(**STANDARD)
    return str(redeem(driver, result["code"])["id_token"])


def logout(driver: LoginDriver, method: str = "GET", **params: str) -> requests.Response:
    url = driver.url("/api/v1/logout")
    if method == "POST":
        return driver.http.post(url, data=params, allow_redirects=False, timeout=30)
    return driver.http.get(url, params=params, allow_redirects=False, timeout=30)


def session_alive(driver: LoginDriver) -> bool:
    params = at_client(silent(driver))
    return "code" in params


def cleared(response: requests.Response) -> bool:
    return any(h.startswith(f"{COOKIE}=;") and "Max-Age=0" in h
               for h in response.raw.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_with_the_users_hint_ends_the_session_and_goes_back_with_state(driver, method):
    id_token = login(driver)
    stolen = driver.http.cookies[COOKIE]
    response = logout(driver, method, id_token_hint=id_token,
                      post_logout_redirect_uri=STANDARD_REDIRECT, state="bye")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{STANDARD_REDIRECT}?state=bye"
    assert cleared(response)
    assert response.headers["Cache-Control"] == "no-store"
    params = at_client(silent(driver))
    assert (params["error"], params["state"]) == ("login_required", "silent")
    # the old cookie value (as a thief would have kept it) is dead too
    assert at_client(silent(fresh(driver, stolen)))["error"] == "login_required"


def test_without_a_redirect_a_plain_logged_out_page(driver):
    id_token = login(driver)
    response = logout(driver, id_token_hint=id_token)
    assert response.status_code == 200
    assert "You are logged out" in response.text and "Location" not in response.headers
    assert not session_alive(driver)


def test_an_expired_hint_still_logs_out(driver, opendid, provisioned):
    login(driver)
    expired = hint_for(opendid, provisioned["user"]["did"], exp=int(time.time()) - 86400)
    assert logout(driver, id_token_hint=expired).status_code == 200
    assert not session_alive(driver)


@pytest.mark.parametrize("uri", [
    "https://evil.example/",
    STANDARD_REDIRECT + "/",
    STANDARD_REDIRECT.upper(),
    STANDARD_REDIRECT + "?x=1",
    STANDARD_REDIRECT + "#x",
    "//evil.example/cb",
])
def test_an_unregistered_post_logout_redirect_uri_is_never_followed(driver, uri):
    id_token = login(driver)
    response = logout(driver, id_token_hint=id_token, post_logout_redirect_uri=uri, state="s")
    assert response.status_code == 200 and "Location" not in response.headers
    assert "not registered" in response.text
    assert not session_alive(driver)  # the logout itself happened


def test_without_state_the_redirect_is_the_registered_uri_unchanged(driver):
    id_token = login(driver)
    response = logout(driver, id_token_hint=id_token, post_logout_redirect_uri=STANDARD_REDIRECT)
    assert response.headers["Location"] == STANDARD_REDIRECT


def test_post_logout_redirect_urls_replace_the_redirect_urls(driver, opendid, provisioned):
    opendid.services.clients.upsert(ClientRecord(
        client_id="logout-client", client_secret=SECRET, redirect_urls=[STANDARD_REDIRECT],
        requirements=requirement(provisioned, ["Email"]), id_token_alg="RS256",
        post_logout_redirect_urls=[LOGOUT_TARGET]))
    result = driver.login(**{**STANDARD, "client_id": "logout-client"})
    id_token = redeem(driver, result["code"], "logout-client")["id_token"]
    refused = logout(driver, id_token_hint=id_token, post_logout_redirect_uri=STANDARD_REDIRECT)
    assert refused.status_code == 200 and "Location" not in refused.headers
    accepted = logout(fresh(driver), id_token_hint=id_token,
                      post_logout_redirect_uri=LOGOUT_TARGET, state="s")
    assert accepted.headers["Location"] == f"{LOGOUT_TARGET}?state=s"


def test_client_id_alone_allows_the_redirect_but_the_user_confirms(driver):
    login(driver)
    response = logout(driver, client_id="standard-client",
                      post_logout_redirect_uri=STANDARD_REDIRECT, state="s")
    assert response.status_code == 200 and "Log out?" in response.text
    assert session_alive(driver)
    # nobody logged in: nothing to confirm, straight back
    gone = logout(fresh(driver), client_id="standard-client",
                  post_logout_redirect_uri=STANDARD_REDIRECT, state="s")
    assert gone.headers["Location"] == f"{STANDARD_REDIRECT}?state=s"


def confirm_form(page: str) -> dict[str, str]:
    return {unescape(name): unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def test_another_users_hint_needs_confirmation_and_a_forged_confirmation_fails(
        driver, opendid, provisioned):
    login(driver)
    other = hint_for(opendid, provisioned["attester"]["did"])
    page = logout(driver, id_token_hint=other, post_logout_redirect_uri=STANDARD_REDIRECT,
                  state="s")
    assert page.status_code == 200 and "Log out?" in page.text
    assert session_alive(driver)
    form = confirm_form(page.text)
    assert form["post_logout_redirect_uri"] == STANDARD_REDIRECT and form["state"] == "s"
    # the confirmation page lets its form's redirect through the CSP
    assert "form-action 'self' http://127.0.0.1:1607" in page.headers["Content-Security-Policy"]
    for wrong in ["", "0" * 64, form["confirm"].upper(), form["confirm"][:-1]]:
        refused = logout(driver, "POST", **{**form, "confirm": wrong})
        assert refused.status_code == 200 and "Log out?" in refused.text, wrong
        assert session_alive(driver)
    # the right value by GET is not a confirmation either (a link anyone can send)
    assert "Log out?" in logout(driver, "GET", **form).text
    assert session_alive(driver)
    # another browser's confirmation value does not end this session
    other_browser = fresh(driver)
    login(other_browser)
    other_form = confirm_form(logout(other_browser).text)
    assert "Log out?" in logout(driver, "POST", **{**form,
                                                   "confirm": other_form["confirm"]}).text
    assert session_alive(driver)
    done = logout(driver, "POST", **form)
    assert done.headers["Location"] == f"{STANDARD_REDIRECT}?state=s"
    assert not session_alive(driver)
    assert session_alive(other_browser)


def test_a_link_without_hint_shows_the_confirmation(driver):
    login(driver)
    page = logout(driver)
    assert page.status_code == 200 and "Log out?" in page.text
    assert session_alive(driver)


@pytest.mark.parametrize("params, message", [
    ({"id_token_hint": "abc"}, "Invalid id_token_hint"),
    ({"id_token_hint": "x" * 3000}, "too long"),
    ({"client_id": "no-such-client"}, "Invalid client_id"),
    ({"client_id": "es-client", "hint": "standard"}, "another client"),
])
def test_bad_logout_requests_are_a_400_and_change_nothing(driver, params, message):
    id_token = login(driver)
    if params.pop("hint", None):
        params["id_token_hint"] = id_token
    for method in ("GET", "POST"):
        response = logout(driver, method, post_logout_redirect_uri=STANDARD_REDIRECT,
                          **params)
        assert response.status_code == 400 and message in response.text
        assert "Location" not in response.headers and not cleared(response)
        assert session_alive(driver)


def test_two_racing_logouts_end_the_session_once_without_error(driver, opendid):
    id_token = login(driver)
    cookie = driver.http.cookies[COOKIE]
    barrier = threading.Barrier(2)
    answers: list[requests.Response] = []

    def one() -> None:
        other = fresh(driver, cookie)
        barrier.wait()
        answers.append(logout(other, id_token_hint=id_token,
                              post_logout_redirect_uri=STANDARD_REDIRECT, state="s"))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [302, 302]
    assert {a.headers["Location"] for a in answers} == {f"{STANDARD_REDIRECT}?state=s"}
    rows = opendid.services.sso.db.connect().execute(
        "SELECT COUNT(*) FROM sso_sessions WHERE id_hash = ?",
        (hashlib.sha256(cookie.encode()).hexdigest(),)).fetchone()[0]
    assert rows == 0


def test_prompt_none_after_logout_gets_login_required(driver):
    id_token = login(driver)
    logout(driver, id_token_hint=id_token)
    params = at_client(silent(driver, id_token_hint=id_token))
    assert params["error"] == "login_required"
    # and a wallet login afterwards works again
    claims = decode_jwt_claims(redeem(driver, driver.login(**STANDARD)["code"])["id_token"])
    assert claims["sub"] == decode_jwt_claims(id_token)["sub"]


def test_post_logout_redirect_urls_config_key(provisioned, tmp_path):
    path = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:9",
                             [STANDARD_REDIRECT])
    data = yaml.safe_load(path.read_text())
    data["clients"]["standard-client"]["postLogoutRedirectUrls"] = [LOGOUT_TARGET]
    data["ssoSessionLifetime"] = 120
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    assert config.ssoSessionLifetime == 120
    services = build_services(config, tmp_path / "instance")
    try:
        client = services.clients.get("standard-client")
        assert client is not None and client.post_logout_redirect_urls == [LOGOUT_TARGET]
        assert services.clients.get("es-client").post_logout_redirect_urls == []
    finally:
        services.chain.close()
    default = write_test_config(provisioned, tmp_path / "default.yaml", "http://127.0.0.1:9",
                                [STANDARD_REDIRECT])
    assert load_config(default).ssoSessionLifetime == 3600

"""The form_post response mode (OAuth 2.0 Form Post Response Mode), as an attacker would try
it: the page posts only to the registered redirect URI's origin (its CSP `form-action`), keeps
the strict CSP (a script file, no inline script), escapes every value, is never cached; a
login's result waits at `/login/result` for that browser session only, once. Over real HTTP
against the dev chain, and in a real Chromium for the auto-submit under the CSP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
import requests
from flask import Flask, request
from joserfc import jwk, jwt

from conftest import (
    OPENDID_REDIRECT,
    SECRET,
    STANDARD_REDIRECT,
    bind_server,
    serve_opendid,
)
from opendid.devtools.login_driver import LoginDriver
from opendid.web.respond import csp_origin

# Written out, not imported: the page's policy is the site's with only form-action changed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action {}")
STANDARD = {"client_id": "standard-client", "redirect_uri": STANDARD_REDIRECT,
            "response_type": "code", "scope": "openid", "state": "s1", "nonce": "n1",
            "response_mode": "form_post"}
OPENDID = {**STANDARD, "client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT}
EVIL_STATE = "\"><script>alert(1)</script><input name='code' value='x"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Page:
    """What a browser would see of a form_post page."""

    forms: list[dict[str, str]] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    scripts: list[dict[str, str]] = field(default_factory=list)
    inline_script: str = ""
    buttons: list[dict[str, str]] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, str]:
        names = [i["name"] for i in self.inputs]
        assert len(names) == len(set(names)), names
        return {i["name"]: i["value"] for i in self.inputs}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page, self.in_script = Page(), False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.page.forms.append(values)
        elif tag == "input":
            self.page.inputs.append(values)
        elif tag == "button":
            self.page.buttons.append(values)
        elif tag == "script":
            self.page.scripts.append(values)
            self.in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.page.inline_script += data


def form_post_page(response: requests.Response, action: str,
                   origin: str = "http://127.0.0.1:1607") -> dict[str, str]:
    """Checks the page as a whole (status, headers, one form posting to `action`, hidden
    fields only, the script file, a button); its fields."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.raw.headers.getlist("Content-Security-Policy") == [CSP.format(origin)]
    assert response.raw.headers.getlist("Cache-Control") == ["no-store"]
    assert "Location" not in response.headers
    parser = _Parser()
    parser.feed(response.text)
    page = parser.page
    assert page.forms == [{"id": "form-post", "method": "post", "action": action}]
    assert all(i["type"] == "hidden" for i in page.inputs)
    assert page.scripts == [{"src": "/static/js/form-post.js"}] and not page.inline_script.strip()
    assert page.buttons == [{"type": "submit"}]  # for browsers without scripts
    return page.fields


def finish(driver: LoginDriver, started: requests.Response) -> requests.Response:
    """The login after /authorize; the 204 the page follows."""
    assert started.status_code == 302 and started.headers["Location"] == "/", started.text
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204, done.text
    return done


def result_page(http: requests.Session, driver: LoginDriver) -> requests.Response:
    return http.get(driver.url("/login/result"), allow_redirects=False, timeout=30)


def fresh(driver: LoginDriver) -> LoginDriver:
    return LoginDriver(driver.base_url, driver.wallet, driver.chain)


def jwks_claims(opendid: Any, token: str) -> dict[str, Any]:
    keys = jwk.KeySet.import_key_set(
        requests.get(opendid.url + "/.well-known/jwks.json", timeout=30).json())
    return dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)


# -- after a login: /login/result ---------------------------------------------------------------


def test_a_code_login_ends_in_the_form_once(driver, opendid):
    done = finish(driver, driver.authorize(**{**STANDARD, "state": EVIL_STATE}))
    assert done.headers["Location"] == "/login/result"  # no code in any URL
    fields = form_post_page(result_page(driver.http, driver), STANDARD_REDIRECT)
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == EVIL_STATE and fields["iss"] == opendid.url
    again = result_page(driver.http, driver)
    assert again.status_code == 400 and "No login result" in again.text
    tokens = requests.post(driver.url("/api/v1/token"), timeout=30, data={
        "grant_type": "authorization_code", "code": fields["code"], "client_id":
        "standard-client", "client_secret": SECRET, "redirect_uri": STANDARD_REDIRECT})
    assert tokens.status_code == 200, tokens.text


@pytest.mark.parametrize("params, origin, expected", [
    ({**STANDARD, "response_type": "id_token token"}, "http://127.0.0.1:1607",
     {"id_token", "access_token", "token_type", "expires_in", "state", "iss"}),
    ({**STANDARD, "response_type": "token id_token"}, "http://127.0.0.1:1607",
     {"id_token", "access_token", "token_type", "expires_in", "state", "iss"}),
    ({**OPENDID, "response_type": "id_token"}, "http://127.0.0.1:1606",
     {"id_token", "refresh_token", "state", "token_type"}),  # OpenDID's fields, no iss
])
def test_an_implicit_login_ends_in_the_form(driver, opendid, params, origin, expected):
    done = finish(driver, driver.authorize(**params))
    assert done.headers["Location"] == "/login/result"  # no token in any URL
    fields = form_post_page(result_page(driver.http, driver), params["redirect_uri"], origin)
    assert set(fields) == expected and fields["state"] == "s1"
    if "iss" in expected:
        assert jwks_claims(opendid, fields["id_token"])["nonce"] == "n1"


def test_the_result_is_for_that_browser_session_only(driver, opendid):
    finish(driver, driver.authorize(**STANDARD))
    stranger = requests.Session()  # no session cookie
    assert result_page(stranger, driver).status_code == 400
    other = fresh(driver)  # a login of its own in progress
    assert other.authorize(**STANDARD).status_code == 302
    assert result_page(other.http, driver).status_code == 400
    victim = form_post_page(result_page(driver.http, driver), STANDARD_REDIRECT)
    assert victim["code"]  # the strangers consumed nothing


def test_two_logins_each_get_their_own_result(driver):
    first, second = driver, fresh(driver)
    finish(first, first.authorize(**{**STANDARD, "state": "first"}))
    finish(second, second.authorize(**{**STANDARD, "state": "second"}))
    assert form_post_page(result_page(second.http, second), STANDARD_REDIRECT)["state"] == \
        "second"
    assert form_post_page(result_page(first.http, first), STANDARD_REDIRECT)["state"] == "first"


def test_racing_fetches_of_the_result_one_wins(driver):
    finish(driver, driver.authorize(**STANDARD))
    cookie = driver.http.cookies.get("opendid")
    start = threading.Barrier(4)

    def fetch(_: int) -> requests.Response:
        with requests.Session() as http:
            http.cookies.set("opendid", cookie)
            start.wait(timeout=30)
            return result_page(http, driver)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(fetch, range(4)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]


def test_requests_that_loaded_the_session_together_get_the_result_once(opendid):
    """The interleaving a race can produce, made certain: two requests both read the result's
    key from the session before either saved it. The one-time store gives it to one."""
    from flask import session

    from opendid.oidc.results import FORM_POST, AuthResponse
    from opendid.web import respond

    with opendid.app.test_request_context("/api/v1/credentials", method="POST"):
        answer = respond.after_login(AuthResponse(STANDARD_REDIRECT, {"code": "c"}, FORM_POST))
        assert (answer.status_code, answer.headers["Location"]) == (204, "/login/result")
        key = session[respond.RESULT_KIND]
    pages = []
    for _ in range(2):
        with opendid.app.test_request_context("/login/result"):
            session[respond.RESULT_KIND] = key
            pages.append(respond.pending_result())
    assert pages[0] is not None and pages[0].status_code == 200 and pages[1] is None


def test_a_new_login_drops_an_undelivered_result(driver):
    finish(driver, driver.authorize(**STANDARD))
    assert driver.authorize(**{**STANDARD, "response_mode": "query"}).status_code == 302
    assert result_page(driver.http, driver).status_code == 400


def test_a_query_login_leaves_nothing_at_the_result_page(driver):
    done = finish(driver, driver.authorize(**{**STANDARD, "response_mode": "query"}))
    assert done.headers["Location"].startswith(STANDARD_REDIRECT + "?code=")
    assert result_page(driver.http, driver).status_code == 400


# -- at /authorize and /login/cancel: the page itself ------------------------------------------


@pytest.mark.parametrize("change, error", [
    ({"response_type": "id_token", "nonce": ""}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"client_id": "es-client", "response_type": "id_token token"}, "unauthorized_client"),
    ({"request": "e30.e30."}, "request_not_supported"),
])
def test_errors_at_authorize_honour_form_post(driver, opendid, change, error):
    params = {k: v for k, v in {**STANDARD, "state": EVIL_STATE, **change}.items() if v}
    for response in (driver.authorize(**params),
                     driver.http.post(driver.url("/api/v1/authorize"), data=params,
                                      allow_redirects=False, timeout=30)):
        fields = form_post_page(response, STANDARD_REDIRECT)
        assert (fields["error"], fields["state"], fields["iss"]) == (error, EVIL_STATE,
                                                                     opendid.url)
        assert EVIL_STATE not in response.text and "<script>alert" not in response.text
        assert "Set-Cookie" not in response.headers  # no login started


def test_an_opendid_style_error_in_form_post_has_no_iss(driver):
    fields = form_post_page(driver.authorize(**{**OPENDID, "response_type": "token"}),
                            OPENDID_REDIRECT, "http://127.0.0.1:1606")
    assert set(fields) == {"error", "error_description", "state"}


@pytest.mark.parametrize("change, message", [
    ({"redirect_uri": "https://evil.example.org/cb"}, "Invalid redirect_uri"),
    ({"redirect_uri": STANDARD_REDIRECT + "/"}, "Invalid redirect_uri"),
    ({"client_id": "nobody"}, "Invalid client_id"),
])
def test_form_post_never_posts_to_an_unregistered_uri(driver, change, message):
    response = driver.authorize(**{**STANDARD, "response_type": "token", **change})
    assert response.status_code == 400 and message in response.text
    assert "<form" not in response.text
    assert "form-action 'self'" in response.headers["Content-Security-Policy"]


def test_cancel_answers_in_form_post(driver, opendid):
    assert driver.authorize(**{**STANDARD, "state": EVIL_STATE}).status_code == 302
    cancelled = driver.http.get(driver.url("/login/cancel"), allow_redirects=False, timeout=30)
    fields = form_post_page(cancelled, STANDARD_REDIRECT)
    assert (fields["error"], fields["state"], fields["iss"]) == ("access_denied", EVIL_STATE,
                                                                 opendid.url)
    again = driver.http.get(driver.url("/login/cancel"), allow_redirects=False, timeout=30)
    assert again.status_code == 400  # the login is over


# -- the CSP source: the redirect URI's origin only -----------------------------------------------


@pytest.mark.parametrize("uri, origin", [
    ("http://127.0.0.1:1607/cb", "http://127.0.0.1:1607"),
    ("https://rp.example.org/cb?tenant=1#x", "https://rp.example.org"),
    ("https://user:pw@RP.Example.org:8443/a/b", "https://rp.example.org:8443"),
    ("https://bücher.example/cb", "https://xn--bcher-kva.example"),
    # what CSP cannot spell, or what would smuggle a directive in, falls back to the scheme
    ("http://[::1]:8080/cb", "http:"),
    ("https://rp.example.org;script-src *", "https:"),
    ("https://rp.example.org 'unsafe-inline'/cb", "https:"),
    ("https://rp.example.org:99999/cb", "https:"),
])
def test_csp_origin(uri, origin):
    assert csp_origin(uri) == origin


# -- in a browser: the form posts itself under the CSP --------------------------------------------


@dataclass
class Catcher:
    """A relying party's redirect URI that records what is posted to it."""

    url: str
    posts: list[dict[str, list[str]]]
    opendid: str


@pytest.fixture(scope="module")
def catcher(provisioned: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catcher]:
    server, rp = bind_server(), bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    rp_url = f"http://127.0.0.1:{rp.server_port}"
    posts: list[dict[str, list[str]]] = []
    rp.app = Flask("catcher")

    @rp.app.post("/cb")
    def received() -> str:
        posts.append({**parse_qs(request.query_string.decode()),
                      **{k: request.form.getlist(k) for k in request.form}})
        return "received"

    with serve_opendid(provisioned, tmp_path_factory.mktemp("form-post"), server,
                       [f"{rp_url}/cb?tenant=1"], rp):
        yield Catcher(rp_url, posts, url)


@pytest.mark.parametrize("scripts", [True, False])
def test_a_browser_posts_the_form_to_the_redirect_uri(catcher, scripts):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium is missing: `make test` installs it"
    params = {"client_id": "rp-client", "redirect_uri": f"{catcher.url}/cb?tenant=1",
              "response_type": "id_token", "scope": "openid", "state": EVIL_STATE,
              "response_mode": "form_post"}  # no nonce: an error, delivered by form_post
    problems: list[str] = []
    catcher.posts.clear()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update"])
        try:
            context = browser.new_context(java_script_enabled=scripts)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and not m.location.get(
                "url", "").endswith("/favicon.ico") and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            with page.expect_navigation(url=f"{catcher.url}/cb?tenant=1", timeout=30_000):
                page.goto(f"{catcher.opendid}/api/v1/authorize?{urlencode(params)}",
                          wait_until="commit")
                if not scripts:
                    page.get_by_role("button", name="Continue").click()
            assert page.content().count("received") == 1
        finally:
            browser.close()
    assert problems == []  # a CSP violation is one
    assert catcher.posts == [{"tenant": ["1"], "error": ["invalid_request"],
                              "error_description": ["Invalid nonce"], "state": [EVIL_STATE],
                              "iss": [catcher.opendid]}]


def test_a_head_request_does_not_consume_the_result(driver):
    """A HEAD (a prefetch, a link checker) delivers nothing and leaves the result for the GET."""
    finish(driver, driver.authorize(**STANDARD))
    assert driver.http.head(driver.url("/login/result"), timeout=30).status_code == 204
    assert form_post_page(result_page(driver.http, driver), STANDARD_REDIRECT)["code"]

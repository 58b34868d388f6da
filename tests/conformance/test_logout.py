"""RP-Initiated Logout OP (oidcc-rp-initiated-logout-certification-test-plan): after a normal
code flow, the browser goes to the discovered end_session_endpoint.

The plan's client registers a post_logout_redirect_uri; standard-client registers none, so its
redirect URIs are accepted as such (issue 7, §1).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from requests.cookies import RequestsCookieJar

from conftest import STANDARD_REDIRECT, Opendid
from opendid.devtools.login_driver import LoginDriver
from tests.conformance.conftest import (
    CODE,
    OP,
    RP,
    TIMEOUT,
    USER_INTERFACE_ERRORS,
    Browser,
    Flow,
    FormParser,
    run,
)

POST_LOGOUT = STANDARD_REDIRECT


def _logout(browser: Browser, op: OP, **params: str) -> requests.Response:
    """BuildRedirectToEndSessionEndpoint, then the browser goes there."""
    url = op.endpoint("end_session_endpoint")
    return browser.http.get(f"{url}?{urlencode(params)}" if params else url,
                            allow_redirects=False, timeout=TIMEOUT)


@dataclass
class SignedIn:
    """A completed login, and the browser's cookies at that moment."""

    flow: Flow
    cookies: RequestsCookieJar

    @property
    def id_token(self) -> str:
        return self.flow.id_token


def _signed_in(browser: Browser, rp: RP) -> SignedIn:
    """The normal flow; then a silent authorization shows the session is live, so that what
    follows the logout tests the logout and not a provider that never kept a session."""
    flow = run(browser, rp, CODE)
    request = rp.request(CODE, prompt="none")
    rp.check_success(request, browser.silent(request.url, rp.redirect_uri))
    return SignedIn(flow, browser.http.cookies.copy())


def _logged_out(browser: Browser, rp: RP, before: SignedIn) -> None:
    """The second authorization, with prompt=none, must fail: the user was logged out. Also
    with the cookies from before the logout (a copy kept elsewhere): the session is over at
    the provider, not only forgotten by this browser."""
    for cookies in (None, before.cookies):
        agent = browser
        if cookies is not None:
            driver = browser.driver
            agent = Browser(LoginDriver(driver.base_url, driver.wallet, driver.chain),
                            browser.provider_url)
            agent.http.cookies.update(cookies)
        request = rp.request(CODE, prompt="none", state_length=128)
        answer = agent.silent(request.url, rp.redirect_uri)
        assert rp.check_error(request, answer) in USER_INTERFACE_ERRORS


def _not_sent_back(response: requests.Response) -> None:
    """The OP must not redirect to the client: an error page, or a page asking the user."""
    if response.status_code in (301, 302, 303, 307, 308):
        target = urljoin(response.url, response.headers["Location"])
        assert not target.startswith(STANDARD_REDIRECT), target
    else:
        assert response.status_code in (200, 400), response.status_code


def _logged_out_page(browser: Browser, op: OP, response: requests.Response) -> None:
    """ExpectSuccessfulLogoutPage: a page saying so, no redirect. Without a hint naming the
    session's user the OP may first ask the user (RP-Initiated Logout §2, "SHOULD ask the
    End-User whether to log out"): the user confirms, as the module's tester would."""
    assert response.status_code == 200, response.status_code
    parser = FormParser()
    parser.feed(response.text)
    endpoint = op.endpoint("end_session_endpoint")
    confirm = [f for f in parser.forms
               if urljoin(response.url, f["action"] or response.url) == endpoint]
    if confirm and "logged out" not in response.text.lower():
        form = confirm[0]
        assert form["method"] == "post"
        response = browser.http.post(endpoint, data=form["inputs"], allow_redirects=False,
                                     timeout=TIMEOUT)
        assert response.status_code == 200, response.status_code
    assert "logged out" in response.text.lower()


def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(op: OP) -> None:
    """CheckDiscEndSessionEndpoint: present, an absolute URL (https in production)."""
    endpoint = urlsplit(op.endpoint("end_session_endpoint"))
    assert endpoint.scheme in ("http", "https") and endpoint.netloc
    assert op.endpoint("end_session_endpoint").startswith(op.issuer)


def test_oidcc_rp_initiated_logout(browser: Browser, rp: RP, op: OP) -> None:
    """Back at the post_logout_redirect_uri with the state and nothing unexpected; then
    prompt=none fails."""
    signed = _signed_in(browser, rp)
    state = secrets.token_urlsafe(96)[:128]
    response = _logout(browser, op, id_token_hint=signed.id_token,
                       post_logout_redirect_uri=POST_LOGOUT, state=state)
    assert response.status_code in (302, 303), response.status_code
    target = urlsplit(urljoin(response.url, response.headers["Location"]))
    assert f"{target.scheme}://{target.netloc}{target.path}" == POST_LOGOUT
    assert _query(target.query) == {"state": state}  # CheckPostLogoutState, nothing else
    _logged_out(browser, rp, signed)


def test_oidcc_rp_initiated_logout_no_state(browser: Browser, rp: RP, op: OP) -> None:
    signed = _signed_in(browser, rp)
    response = _logout(browser, op, id_token_hint=signed.id_token,
                       post_logout_redirect_uri=POST_LOGOUT)
    assert response.status_code in (302, 303), response.status_code
    target = urlsplit(urljoin(response.url, response.headers["Location"]))
    assert f"{target.scheme}://{target.netloc}{target.path}" == POST_LOGOUT
    assert _query(target.query) == {}  # CheckNoPostLogoutState, no unexpected parameters
    _logged_out(browser, rp, signed)


def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(browser: Browser, rp: RP,
                                                               op: OP) -> None:
    signed = _signed_in(browser, rp)
    unregistered = "http://127.0.0.1:1607/unregistered-logout"
    response = _logout(browser, op, id_token_hint=signed.id_token,
                       post_logout_redirect_uri=unregistered, state="s")
    _not_sent_back(response)
    if response.is_redirect:
        assert not response.headers["Location"].startswith(unregistered)


@pytest.mark.parametrize("how", ["alg-none", "bad-signature"])
def test_oidcc_rp_initiated_logout_modified_id_token_hint(browser: Browser, rp: RP, op: OP,
                                                         how: str) -> None:
    """The hint changed to alg none (ChangeIdTokenToAlgNone), or (a variant) its signature
    altered: not a token of this OP, so no redirect."""
    signed = _signed_in(browser, rp)
    head, payload, signature = signed.id_token.split(".")
    if how == "alg-none":
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        header["alg"] = "none"
        head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        signature = ""
    else:
        signature = signature[:-4] + "AAAA"
    response = _logout(browser, op, id_token_hint=f"{head}.{payload}.{signature}",
                       post_logout_redirect_uri=POST_LOGOUT, state="s")
    _not_sent_back(response)


def test_logout_to_another_clients_uri_is_not_followed(browser: Browser, rp: RP, op: OP,
                                                       opendid: Opendid) -> None:
    """Beyond the modules: a URI registered for another client (the demo RP's) is not a
    post_logout_redirect_uri of the client the hint names."""
    signed = _signed_in(browser, rp)
    elsewhere = opendid.rp_url + "/callback"
    response = _logout(browser, op, id_token_hint=signed.id_token,
                       post_logout_redirect_uri=elsewhere, state="s")
    _not_sent_back(response)
    if response.is_redirect:
        assert not response.headers["Location"].startswith(elsewhere)


def test_oidcc_rp_initiated_logout_no_id_token_hint(browser: Browser, rp: RP, op: OP) -> None:
    """Without a hint the OP cannot tell whose post_logout_redirect_uri it is: no redirect."""
    _signed_in(browser, rp)
    response = _logout(browser, op, post_logout_redirect_uri=POST_LOGOUT, state="s")
    _not_sent_back(response)


def test_oidcc_rp_initiated_logout_no_params(browser: Browser, rp: RP, op: OP) -> None:
    """No parameters: the OP logs the user out and says so."""
    signed = _signed_in(browser, rp)
    _logged_out_page(browser, op, _logout(browser, op))
    _logged_out(browser, rp, signed)


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(browser: Browser, rp: RP,
                                                              op: OP) -> None:
    signed = _signed_in(browser, rp)
    _logged_out_page(browser, op, _logout(browser, op, id_token_hint=signed.id_token, state="s"))
    _logged_out(browser, rp, signed)


def test_oidcc_rp_initiated_logout_only_state(browser: Browser, rp: RP, op: OP) -> None:
    signed = _signed_in(browser, rp)
    _logged_out_page(browser, op, _logout(browser, op, state="s"))
    _logged_out(browser, rp, signed)


def _query(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

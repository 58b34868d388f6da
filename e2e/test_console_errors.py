"""Every page of both sites loads without a console error or a failed request (the watcher in
e2e/conftest.py fails the test at teardown), and the login page lists wallets as soon as they
are known, on a browser clock the test holds still."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from conftest import OPENDID_REDIRECT

# kilt-bridge.js: how long the page looks for wallets before it says there is none
NO_WALLET_AFTER_MS = 2000
# a wallet extension as the Credential API sees it: an object under window.kilt
FAKE_WALLET = "{ name: %r, startSession() { throw new Error('not in this test'); } }"


def _login_url(opendid) -> str:
    query = urlencode({"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT,
                       "response_type": "code", "state": "s", "nonce": "n"})
    return f"{opendid.url}/api/v1/authorize?{query}"


def _icon_href(page: Page) -> str:
    return str(page.locator("link[rel=icon]").get_attribute("href"))


def test_every_page_of_a_whole_login_is_clean_and_has_an_icon(page: Page, dev_site, provisioned):
    """Demo home, the login page, the wallet dialog, the greeting: no error on any of them
    (a missing icon is a 404 on the console); each page links an icon that loads."""
    page.goto(dev_site.rp_url)
    expect(page.get_by_role("heading", name="Demo app")).to_be_visible()
    expect(page.locator("#login-code ~ p")).to_contain_text("one-time code")
    expect(page.locator("#login-implicit ~ p")).to_contain_text("ID token")
    assert page.request.get(dev_site.rp_url + _icon_href(page)).ok
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_role("button", name="Dev wallet")).to_be_visible()
    icon = page.request.get(dev_site.url + _icon_href(page))
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    page.get_by_role("button", name="Dev wallet").click()
    page.get_by_role("dialog").get_by_role("button", name="Share").click()
    expect(page.locator("#greeting")).to_be_visible()
    expect(page.locator("#claim-email")).to_have_text("some@example.org")
    expect(page.locator("#attestation")).to_have_class("valid")


@pytest.mark.parametrize("path", ["/", "/.well-known/openid-configuration", "/api/v1/health",
                                  "/.well-known/did-configuration.json", "/no-such-page"])
def test_provider_pages_opened_directly_are_clean(page: Page, dev_site, watched, path):
    """Pages a person may open by hand, HTML or not: the browser finds an icon for each."""
    if path == "/no-such-page":
        watched.expect_http_error(path, 404)
    answer = page.goto(dev_site.url + path)
    assert answer is not None
    assert answer.status == (404 if path == "/no-such-page" else 200)
    assert page.request.get(dev_site.url + "/favicon.ico").ok


@pytest.mark.parametrize("path", ["/", "/callback?error=access_denied", "/no-such-page"])
def test_demo_app_pages_opened_directly_are_clean(page: Page, dev_site, watched, path):
    status = {"/": 200, "/no-such-page": 404}.get(path, 400)
    if status != 200:
        watched.expect_http_error(path.split("?")[0], status)
    answer = page.goto(dev_site.rp_url + path)
    assert answer is not None and answer.status == status
    assert page.request.get(dev_site.rp_url + "/favicon.ico").ok


def test_wallets_already_in_window_kilt_are_listed_at_once(page: Page, opendid):
    """An extension that injected itself before the page ran: listed with no timer at all."""
    page.add_init_script(f"window.kilt = {{ early: {FAKE_WALLET % 'Early wallet'} }};")
    page.clock.install()
    page.clock.pause_at(1_000_000_000_000)
    page.goto(_login_url(opendid))
    expect(page.get_by_role("button", name="Early wallet")).to_be_visible()


def test_a_wallet_is_listed_on_its_announcement(page: Page, opendid):
    """An extension that announces itself later: listed on its event, with no timer."""
    page.clock.install()
    page.clock.pause_at(1_000_000_000_000)
    page.goto(_login_url(opendid))
    expect(page.locator("#wallets")).to_have_attribute("aria-busy", "true")
    page.evaluate("window.kilt.late = " + FAKE_WALLET % "Late wallet" + ";"
                  "window.dispatchEvent(new CustomEvent('kilt-extension#initialized'))")
    expect(page.get_by_role("button", name="Late wallet")).to_be_visible()


def test_no_wallet_found_only_after_the_bounded_wait(page: Page, opendid):
    page.clock.install()
    page.clock.pause_at(1_000_000_000_000)
    page.goto(_login_url(opendid))
    wallets = page.locator("#wallets")
    expect(wallets).to_contain_text("Looking for identity wallets")
    page.clock.run_for(NO_WALLET_AFTER_MS - 100)
    # the panel turns busy=false in the same task that asks for the list: still looking
    expect(wallets).to_have_attribute("aria-busy", "true")
    page.clock.run_for(100)
    expect(page.get_by_role("heading", name="No identity wallet found")).to_be_visible()

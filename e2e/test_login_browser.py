"""Both flows, DID-only login, cancelling, refused credentials and the no-wallet page, clicked
through in Chromium against the dev chain."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from conftest import (
    OPENDID_REDIRECT,
    SECRET,
    bind_server,
    serve_apps,
    write_test_config,
)
from demo_rp.app import create_demo_app
from e2e.conftest import shot
from opendid.application import create_app
from opendid.devtools.tcp_proxy import TcpProxy
from opendid.kilt.chain import ChainClient


def _pick_dev_wallet(page: Page) -> None:
    button = page.get_by_role("button", name="Dev wallet")
    expect(button).to_be_visible()
    button.click()


def test_code_flow_in_the_browser(page: Page, dev_site, provisioned):
    page.goto(dev_site.rp_url)
    shot(page, "01-demo-app-home")
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_role("heading", name="Log in with your KILT identity")).to_be_visible()
    expect(page.get_by_text("rp-client")).to_be_visible()
    expect(page.get_by_text("Email credential showing Email")).to_be_visible()
    expect(page.get_by_role("button", name="Dev wallet")).to_be_visible()
    shot(page, "02-login-page-wallet-picker")
    _pick_dev_wallet(page)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Email (trusted attester)")
    expect(page.locator(".step.done")).to_have_count(1)  # secure session established
    shot(page, "03-dev-wallet-asks-to-share")
    dialog.get_by_role("button", name="Share").click()
    page.wait_for_url(re.compile(re.escape(dev_site.rp_url) + "/callback"))
    expect(page.locator("#greeting")).to_have_text(f"Hello, {provisioned['user']['web3name']}!")
    expect(page.locator("#did")).to_have_text(provisioned["user"]["did"])
    expect(page.get_by_text("authorization code flow")).to_be_visible()
    shot(page, "04-greeted-after-code-flow")


def test_implicit_flow_in_the_browser(page: Page, dev_site, provisioned):
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (implicit flow)").click()
    _pick_dev_wallet(page)
    page.get_by_role("dialog").get_by_role("button", name="Share").click()
    expect(page.locator("#greeting")).to_have_text(f"Hello, {provisioned['user']['web3name']}!")
    expect(page.get_by_text("implicit flow")).to_be_visible()
    expect(page.locator("#web3name")).to_have_text(provisioned["user"]["web3name"])
    shot(page, "05-greeted-after-implicit-flow")


def test_did_only_login_in_the_browser(page: Page, dev_site, provisioned):
    page.goto(dev_site.did_rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_text("asks you to log in with your DID")).to_be_visible()
    _pick_dev_wallet(page)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(provisioned["user"]["did"])
    shot(page, "06-did-only-login-sign-prompt")
    dialog.get_by_role("button", name="Sign").click()
    expect(page.locator("#greeting")).to_have_text(f"Hello, {provisioned['user']['web3name']}!")
    shot(page, "07-greeted-after-did-only-login")


def _back_links(page: Page):
    """Every visible link that leads back to the application (any wording, any case)."""
    return page.get_by_role("link", name=re.compile("back to the application", re.IGNORECASE))


def test_cancel_in_the_wallet_then_retry_or_go_back(page: Page, dev_site, watched):
    watched.expect_http_error("/callback", 400)  # the demo app's "login failed" page
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(_back_links(page)).to_have_count(1)  # "Cancel and go back", before any failure
    _pick_dev_wallet(page)
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    alert = page.locator(".failure")
    expect(alert).to_contain_text("Login cancelled")
    expect(page.locator("#failure-title")).to_be_focused()
    # one way back, the failure panel's: two links doing the same thing is one too many
    expect(_back_links(page)).to_have_count(1)
    expect(_back_links(page)).to_have_text("Back to the application")
    shot(page, "08-cancelled-in-wallet")
    page.get_by_role("button", name="Try again").click()
    expect(alert).to_have_count(0)
    expect(page.get_by_role("button", name="Dev wallet")).to_be_focused()
    page.keyboard.press("Enter")  # keyboard only
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.locator(".failure")).to_have_count(1)
    expect(alert).to_contain_text("Login cancelled")
    expect(page.locator("#failure-title")).to_be_focused()
    back = _back_links(page)
    expect(back).to_have_count(1)
    expect(back).to_have_text("Back to the application")
    back.click()
    expect(page.locator("#failed")).to_be_visible()
    expect(page.get_by_text("access_denied")).to_be_visible()


def test_a_late_wallet_announcement_does_not_hold_back_the_login(page: Page, dev_site):
    """An extension that announces itself while the page lists wallets again must not delay or
    drop the login's own swaps (progress, wallet dialog): each panel's requests stand alone."""
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_role("button", name="Dev wallet")).to_be_visible()
    held: list[Route] = []
    page.route("**/login/wallets", lambda route: held.append(route))  # stays in flight
    with page.expect_request("**/login/wallets"):  # routed: in flight until continued
        page.evaluate("window.dispatchEvent(new CustomEvent('kilt-extension#initialized'))")
    page.get_by_role("button", name="Dev wallet").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Email (trusted attester)")
    expect(page.locator(".step.done")).to_have_count(1)  # secure session established
    assert len(held) == 1  # and the wallet list was still on its way all along
    held[0].continue_()
    page.unroute("**/login/wallets")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator(".failure")).to_contain_text("Login cancelled")
    expect(page.locator("#failure-title")).to_be_focused()


@pytest.mark.parametrize("label, title, detail, screenshot", [
    ("Email (untrusted attester)", "Credential not accepted", "does not trust",
     "09-untrusted-attester-refused"),
    ("Email (revoked)", "Verification failed", "revoked", "09b-revoked-credential-refused"),
])
def test_credentials_the_client_does_not_accept(page: Page, dev_site, label, title, detail,
                                                screenshot):
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    _pick_dev_wallet(page)
    dialog = page.get_by_role("dialog")
    dialog.get_by_label(re.compile(re.escape(label))).check()
    dialog.get_by_role("button", name="Share").click()
    failure = page.locator(".failure")
    expect(failure).to_contain_text(title)
    expect(failure).to_contain_text(detail)
    shot(page, screenshot)


def test_no_matching_credential(page: Page, dev_site):
    query = urlencode({"client_id": "other-ctype-client", "redirect_uri":
                       f"{dev_site.rp_url}/callback", "response_type": "code", "state": "s",
                       "nonce": "n"})
    page.goto(f"{dev_site.url}/api/v1/authorize?{query}")
    _pick_dev_wallet(page)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("You have no credential")
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator(".failure")).to_contain_text("No matching credential")
    shot(page, "10-no-matching-credential")


def test_no_wallet_page(page: Page, opendid):
    query = urlencode({"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT,
                       "response_type": "code", "state": "s", "nonce": "n"})
    page.goto(f"{opendid.url}/api/v1/authorize?{query}")
    expect(page.get_by_role("heading", name="No identity wallet found")).to_be_visible()
    expect(page.get_by_role("link", name="Get Sporran, a KILT wallet")).to_have_attribute(
        "href", "https://www.sporran.org/")
    shot(page, "11-no-wallet-found")


def test_phone_sized_screen(open_page, dev_site):
    page = open_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    button = page.get_by_role("button", name="Dev wallet")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None and box["width"] <= 390 and box["height"] >= 44
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    shot(page, "12-login-page-phone")


def test_expired_session_page(page: Page, dev_site):
    page.goto(dev_site.url + "/")
    expect(page.get_by_text("There is no login in progress")).to_be_visible()
    shot(page, "13-no-login-in-progress")


def test_session_expired(page: Page, dev_site):
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_role("button", name="Dev wallet")).to_be_visible()
    page.context.clear_cookies()  # the login session is gone, as after sessionTtl
    page.get_by_role("button", name="Dev wallet").click()
    expect(page.locator(".failure")).to_contain_text("Session expired")
    expect(page.get_by_role("button", name="Try again")).to_have_count(0)
    shot(page, "14-session-expired")


def test_chain_unreachable_then_back(open_page, provisioned, chain_url, tmp_path):
    """The server's chain connection is cut while the wallet asks; the page says so, and a
    retry works once the chain is back."""
    proxy = TcpProxy(urlsplit(chain_url).port).start()
    server, rp = bind_server(), bind_server()
    url, rp_url = (f"http://127.0.0.1:{s.server_port}" for s in (server, rp))
    path = write_test_config(provisioned, tmp_path / "config.yaml", url,
                             [f"{rp_url}/callback", f"{rp_url}/callback/implicit"])
    # max_backoff=0: the client tries the node again on the next request, so "the chain is
    # back" is a fact the test can check once, not a delay it has to wait out.
    chain = ChainClient(proxy.url, max_backoff=0)
    server.app = create_app(path, dev=True, instance_path=tmp_path / "instance",
                            wallet_path=provisioned["wallet"], chain=chain)
    rp.app = create_demo_app(url, "rp-client", SECRET, rp_url)
    try:
        with serve_apps(server, rp):
            page = open_page()
            page.goto(rp_url)
            page.get_by_role("link", name="Log in (authorization code flow)").click()
            _pick_dev_wallet(page)
            dialog = page.get_by_role("dialog")
            expect(dialog).to_contain_text("Email (trusted attester)")
            proxy.stop()
            dialog.get_by_role("button", name="Share").click()
            expect(page.locator(".failure")).to_contain_text("KILT blockchain unreachable")
            expect(page.request.get(url + "/api/v1/health")).not_to_be_ok()
            shot(page, "15-chain-unreachable")
            proxy.start()
            expect(page.request.get(url + "/api/v1/health")).to_be_ok()  # reconnected
            page.get_by_role("button", name="Try again").click()
            _pick_dev_wallet(page)
            page.get_by_role("dialog").get_by_role("button", name="Share").click()
            expect(page.locator("#greeting")).to_contain_text("Hello,")
    finally:
        chain.close()
        proxy.stop()

"""Single sign-on in Chromium: after one wallet login, a second application logs the user in
without the wallet; after logging out of the provider, the wallet is asked again."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, expect

from e2e.conftest import shot


def test_a_second_app_logs_in_without_the_wallet(page: Page, dev_site, provisioned):
    provider = urlsplit(dev_site.url).netloc
    login_pages: list[str] = []

    def seen(request: Request) -> None:
        parts = urlsplit(request.url)
        if request.resource_type == "document" and parts.netloc == provider and parts.path == "/":
            login_pages.append(request.url)

    page.on("request", seen)
    # the first application: the wallet
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    page.get_by_role("button", name="Dev wallet").click()
    page.get_by_role("dialog").get_by_role("button", name="Share").click()
    expect(page.locator("#greeting")).to_have_text(f"Hello, {provisioned['user']['web3name']}!")
    assert len(login_pages) == 1
    # the second application: straight back, logged in, no login page on the way
    page.goto(dev_site.did_rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    page.wait_for_url(re.compile(re.escape(dev_site.did_rp_url) + "/callback"))
    expect(page.locator("#greeting")).to_have_text(f"Hello, {provisioned['user']['web3name']}!")
    expect(page.locator("#did")).to_have_text(provisioned["user"]["did"])
    assert len(login_pages) == 1
    shot(page, "16-second-app-single-sign-on")
    # log out of the provider (a link without a hint: the user confirms)
    page.goto(dev_site.url + "/api/v1/logout")
    expect(page.get_by_role("heading", name="Log out?")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="You are logged out")).to_be_visible()
    shot(page, "17-logged-out")
    # the second application now needs the wallet again
    page.goto(dev_site.did_rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_role("button", name="Dev wallet")).to_be_visible()
    assert len(login_pages) == 2


def test_a_session_that_cannot_answer_names_the_user_on_the_login_page(page: Page, dev_site,
                                                                        provisioned):
    """DID-only login first; the credential application then needs the wallet, and the page
    says who is logged in."""
    page.goto(dev_site.did_rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    page.get_by_role("button", name="Dev wallet").click()
    page.get_by_role("dialog").get_by_role("button", name="Sign").click()
    expect(page.locator("#greeting")).to_contain_text("Hello,")
    page.goto(dev_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    notice = page.locator("#signed-in")
    expect(notice).to_contain_text(f"w3n:{provisioned['user']['web3name']}")
    expect(page.get_by_role("button", name="Dev wallet")).to_be_visible()
    shot(page, "18-logged-in-but-wallet-needed")
    page.get_by_role("button", name="Dev wallet").click()
    page.get_by_role("dialog").get_by_role("button", name="Share").click()
    expect(page.locator("#greeting")).to_have_text(f"Hello, {provisioned['user']['web3name']}!")

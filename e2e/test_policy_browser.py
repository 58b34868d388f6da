"""A login refused by the client's login policy (`checksDirectory`), clicked through in
Chromium: the page says "Not allowed for this application" and nothing reaches the client."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.sync_api import Page, expect

from conftest import SECRET, bind_server, serve_opendid
from e2e.conftest import shot

REDIRECT = "http://127.0.0.1:1606/callback.html"


def test_a_login_the_policy_refuses_reads_not_allowed(page: Page, provisioned, tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "email.cel").write_text('token.pro.Email.endsWith("@kilt.io")\n')
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    guarded = {"requirements": [{"cTypeHash": provisioned["ctype"],
                                 "trustedAttesters": [provisioned["attester"]["did"]],
                                 "requiredProperties": ["Email"]}],
               "redirectUrls": [REDIRECT], "clientSecret": SECRET, "checksDirectory": "checks"}
    query = urlencode({"client_id": "guarded-client", "redirect_uri": REDIRECT,
                       "response_type": "code", "state": "s", "nonce": "n"})
    with serve_opendid(provisioned, tmp_path, server, [REDIRECT], dev=True,
                       clients={"guarded-client": guarded}):
        page.goto(f"{url}/api/v1/authorize?{query}")
        page.get_by_role("button", name="Dev wallet").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Email (trusted attester)")
        dialog.get_by_role("button", name="Share").click()
        failure = page.locator(".failure")
        expect(failure).to_contain_text("Not allowed for this application")
        expect(failure).to_contain_text("login policy does not accept this identity")
        expect(page.locator("#failure-title")).to_be_focused()
        assert page.url.startswith(url)  # never sent to the client
        shot(page, "16-refused-by-login-policy")

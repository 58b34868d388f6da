"""The admin page in Chromium: the admin logs in with the dev wallet through this provider,
creates a client whose requirements are checked on the dev chain, a user logs in to an
application with that client, the admin deletes it, and the same login is then refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, expect
from werkzeug.serving import BaseWSGIServer

from conftest import bind_server, serve_opendid
from demo_rp.app import create_demo_app
from e2e.conftest import shot


@dataclass
class AdminSite:
    url: str
    rp_url: str
    rp: BaseWSGIServer


@pytest.fixture(scope="module")
def admin_site(provisioned: dict[str, Any],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    server, rp = bind_server(), bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    rp_url = f"http://127.0.0.1:{rp.server_port}"
    with serve_opendid(provisioned, tmp_path_factory.mktemp("admin-site"), server,
                       [f"{rp_url}/callback"], rp, dev=True,
                       admin={"enabled": True, "dids": [provisioned["user"]["did"]]}):
        yield AdminSite(url, rp_url, rp)


def _admin_login(page: Page, site: AdminSite, did: str) -> None:
    page.goto(site.url + "/admin/")
    page.get_by_role("link", name="Log in with your wallet").click()
    expect(page.get_by_text("opendid-admin")).to_be_visible()
    expect(page.get_by_text("asks you to log in with your DID")).to_be_visible()
    page.get_by_role("button", name="Dev wallet").click()
    page.get_by_role("dialog").get_by_role("button", name="Sign").click()
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    expect(page.locator("#admin-did")).to_have_text(did)


def test_an_admin_creates_a_client_that_logs_in_then_deletes_it(page: Page, admin_site,
                                                                provisioned):
    user = provisioned["user"]
    _admin_login(page, admin_site, user["did"])
    expect(page.locator("tr[data-client=rp-client]")).to_contain_text("config.yaml")
    shot(page, "30-admin-client-list")

    page.get_by_role("link", name="Add a client").click()
    client_id = "admin-made-client"
    page.get_by_label("Client ID").fill(client_id)
    page.get_by_label("Redirect URIs (one per line)").fill(f"{admin_site.rp_url}/callback")
    page.get_by_label("Standard OpenID Connect (JWKS-signed)").check()
    page.get_by_label("CType hash").fill(provisioned["ctype"])
    page.get_by_label("Trusted attester DIDs (one per line)").fill(provisioned["attester"]["did"])
    page.get_by_label("Required properties (comma separated)").fill("Email")
    shot(page, "31-admin-new-client-form")
    page.get_by_role("button", name="Add client").click()
    expect(page.get_by_role("heading", name=f"{client_id} created")).to_be_visible()
    secret = page.locator("#client-secret").inner_text()
    assert len(secret) >= 40
    shot(page, "32-admin-client-created-secret-once")

    # an application registered with that client: the user logs in with the wallet
    admin_site.rp.app = create_demo_app(admin_site.url, client_id, secret, admin_site.rp_url)
    page.goto(admin_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_text(client_id)).to_be_visible()
    page.get_by_role("button", name="Dev wallet").click()
    page.get_by_role("dialog").get_by_role("button", name="Share").click()
    page.wait_for_url(re.compile(re.escape(admin_site.rp_url) + "/callback"))
    expect(page.locator("#greeting")).to_have_text(f"Hello, {user['web3name']}!")

    # the admin deletes it (confirming the question)
    page.goto(admin_site.url + f"/admin/clients/{client_id}")
    answered: list[str] = []

    def confirm(dialog: Dialog) -> None:
        answered.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.get_by_role("button", name=f"Delete {client_id}").click()
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    expect(page.locator(f"tr[data-client={client_id}]")).to_have_count(0)
    assert answered and client_id in answered[0]
    shot(page, "33-admin-client-deleted")

    # the same application's login is now refused by the provider
    page.goto(admin_site.rp_url)
    page.get_by_role("link", name="Log in (authorization code flow)").click()
    expect(page.get_by_role("heading", name="This login link is not valid")).to_be_visible()
    expect(page.get_by_text("Invalid client_id")).to_be_visible()
    shot(page, "34-login-refused-after-delete")


def test_a_form_error_is_shown_in_place_and_nothing_is_saved(page: Page, admin_site,
                                                              provisioned, watched):
    watched.expect_http_error("/admin/clients", 400)
    _admin_login(page, admin_site, provisioned["user"]["did"])
    page.get_by_role("link", name="Add a client").click()
    page.get_by_label("Client ID").fill("unchecked-client")
    page.get_by_label("Redirect URIs (one per line)").fill(f"{admin_site.rp_url}/callback")
    page.get_by_label("CType hash").fill("0x" + "ab" * 32)
    page.get_by_label("Trusted attester DIDs (one per line)").fill(provisioned["attester"]["did"])
    page.get_by_role("button", name="Add client").click()
    expect(page.locator("#req-0-ctype-error")).to_contain_text("does not exist on chain")
    expect(page.get_by_label("Client ID")).to_have_value("unchecked-client")
    shot(page, "35-admin-form-error")
    page.goto(admin_site.url + "/admin/")
    expect(page.locator("tr[data-client=unchecked-client]")).to_have_count(0)

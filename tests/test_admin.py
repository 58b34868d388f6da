"""The /admin page over real HTTP against the dev chain: the admin logs in through this very
provider with a DID-only wallet login; allow-list, admin session and CSRF token, the client
form's validation and chain checks, read-only sources, secret rotation and the audit log."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (
    SECRET,
    bind_server,
    load_vector,
    serve_apps,
    store_overrides,
    write_test_config,
)
from opendid.admin.allowlist import AdminList, normalise_did
from opendid.admin.login import ADMIN_CLIENT_ID, PENDING_KIND, callback_url
from opendid.application import create_app
from opendid.cli import main as cli
from opendid.devtools.login_driver import LoginDriver, result_params
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.kilt.dids import full_did_from_account
from opendid.kilt.errors import InvalidDid
from opendid.store.clients import HASH_PREFIX, ClientRecord, client_secret_matches
from tests.races import race
from tests.respell import did_respellings

UNKNOWN_CTYPE = "0x" + "ab" * 32
AUDIT = "opendid.admin.audit"


@dataclass
class Site:
    url: str
    instance: Path
    app: Any

    @property
    def services(self) -> Any:
        return self.app.extensions["opendid"]

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(cli, [*args, "--instance", str(self.instance)])
        return result


@pytest.fixture(scope="module")
def site(provisioned: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[Site]:
    """OpenDID with the admin page on; the login state in Redis with OPENDID_TEST_STORE=redis."""
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    folder = tmp_path_factory.mktemp("admin")
    path = write_test_config(provisioned, folder / "config.yaml", url,
                             ["http://127.0.0.1:1/callback"], admin={"enabled": True},
                             **store_overrides(request))
    app = create_app(path, instance_path=folder / "instance")
    server.app = app
    with serve_apps(server):
        yield Site(url, folder / "instance", app)
    app.extensions["opendid"].chain.close()


@pytest.fixture()
def admin_did(site: Site, wallet: Wallet) -> Iterator[str]:
    """The dev wallet's DID on the allow-list (added with the CLI) for one test."""
    result = site.cli("admin", "add-did", wallet.did)
    assert result.exit_code == 0, result.output
    yield wallet.did
    site.cli("admin", "remove-did", wallet.did)


@dataclass
class Browser:
    """An admin's browser: a cookie jar and the last page's CSRF token."""

    site: Site
    http: requests.Session
    csrf: str = ""

    def get(self, path: str) -> requests.Response:
        response = self.http.get(self.site.url + path, allow_redirects=False, timeout=30)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, str] | None = None, csrf: str | None = None,
             **kwargs: Any) -> requests.Response:
        form = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            form["csrf_token"] = token
        response = self.http.post(self.site.url + path, data=form, allow_redirects=False,
                                  timeout=60, **kwargs)
        self._remember(response)
        return response

    def _remember(self, response: requests.Response) -> None:
        found = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        if found:
            self.csrf = found.group(1)


def wallet_login(site: Site, wallet: Wallet, chain: ChainClient,
                 http: requests.Session | None = None) -> tuple[LoginDriver, str]:
    """/admin/login through the provider's DID-only login: the callback URL it ends at."""
    driver = LoginDriver(site.url, wallet, chain, http or requests.Session())
    started = driver.http.get(site.url + "/admin/login", allow_redirects=False, timeout=30)
    assert started.status_code == 303, started.text
    authorize = started.headers["Location"]
    assert authorize.startswith("/api/v1/authorize?")
    page = driver.http.get(site.url + authorize, allow_redirects=False, timeout=30)
    assert page.status_code == 302, page.text
    nonce = parse_qs(urlsplit(page.headers["Location"]).query)["nonce"][0]
    done = driver.did_login(driver.did_token(nonce))
    assert done.status_code == 204, done.text
    return driver, done.headers["Location"]


def log_in(site: Site, wallet: Wallet, chain: ChainClient) -> Browser:
    driver, callback = wallet_login(site, wallet, chain)
    answer = driver.http.get(callback, allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    browser = Browser(site, driver.http)
    listing = browser.get("/admin/")
    assert listing.status_code == 200 and "Clients" in listing.text
    return browser


def client_form(client_id: str = "", **fields: str) -> dict[str, str]:
    form = {"redirect_urls": "https://app.example.org/callback", "kind": "confidential",
            "token_style": "opendid", "alg": "RS256", "claim_map": ""}
    if client_id:
        form["client_id"] = client_id
    form.update(fields)
    return form


def fresh_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


# -- allow-list and login --------------------------------------------------------------------


def test_an_admin_logs_in_with_a_strict_http_only_cookie(site, wallet, chain, admin_did):
    driver, callback = wallet_login(site, wallet, chain)
    answer = driver.http.get(callback, allow_redirects=False, timeout=30)
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/"
    cookie = next(c for c in answer.raw.headers.getlist("Set-Cookie")
                  if c.startswith("opendid_admin="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    listing = driver.http.get(site.url + "/admin/", timeout=30)
    assert admin_did in listing.text
    assert "rp-client" in listing.text and "config.yaml" in listing.text
    assert listing.headers["Cache-Control"] == "no-store"


def test_the_admin_cookie_is_secure_in_production(site):
    with site.app.test_request_context("/admin/"):
        from flask import Response

        from opendid.web import admin as web_admin

        site.services.config.production = True
        try:
            response = Response()
            web_admin._set_cookie(response, web_admin.COOKIE, "x", 60)
        finally:
            site.services.config.production = False
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_did_not_on_the_allow_list_is_refused(site, wallet, chain, caplog):
    caplog.set_level(logging.INFO, AUDIT)
    driver, callback = wallet_login(site, wallet, chain)  # the wallet's DID is not listed
    answer = driver.http.get(callback, allow_redirects=False, timeout=30)
    assert answer.status_code == 403
    assert "is not on the admin list" in answer.text
    assert not any(c.startswith("opendid_admin=") and "Max-Age=0" not in c
                   for c in answer.raw.headers.getlist("Set-Cookie"))
    assert driver.http.get(site.url + "/admin/", timeout=30).text.count("Log in with your wallet")
    assert f"admin {wallet.did} refused" in caplog.text


def test_another_did_is_not_let_in_by_an_admins_entry(site, chain, admin_did):
    attester = Wallet(load_vector("provisioned-state.json")["attester"]["mnemonic"], [])
    assert attester.did != admin_did
    driver, callback = wallet_login(site, attester, chain)
    assert driver.http.get(callback, allow_redirects=False, timeout=30).status_code == 403


@pytest.mark.parametrize("spelling", ["two-byte prefix", "0x hex", "0x upper hex",
                                      "generic prefix 42", "leading space", "trailing newline",
                                      "upper-case method"])
def test_the_same_did_in_another_encoding_is_the_same_admin(site, wallet, chain, spelling):
    written = did_respellings(wallet.did)[spelling]
    assert written != wallet.did
    result = site.cli("admin", "add-did", written)
    try:
        assert result.exit_code == 0, result.output
        assert AdminList(site.services.clients.db, []).stored() == [wallet.did]
        log_in(site, wallet, chain)
    finally:
        assert site.cli("admin", "remove-did", written).exit_code == 0
    assert AdminList(site.services.clients.db, []).stored() == []


def test_the_configs_dids_are_normalised_too(site, wallet):
    spelled = did_respellings(wallet.did)
    listed = AdminList(site.services.clients.db, [spelled["generic prefix 42"]])
    assert listed.allows(wallet.did)
    other = full_did_from_account(os.urandom(32)).uri
    assert not listed.allows(other)
    assert not AdminList(site.services.clients.db, [other]).allows(wallet.did)


def test_what_is_not_a_full_did_is_refused_by_add_did(site, wallet):
    address = wallet.did.removeprefix("did:kilt:")
    for bad in ("did:kilt:light:00" + address, wallet.did + "#0x" + "00" * 32, address,
                "did:kilt:" + address[:-1], "did:web:example.org", ""):
        with pytest.raises(InvalidDid):
            normalise_did(bad)
        assert site.cli("admin", "add-did", bad).exit_code != 0
    assert AdminList(site.services.clients.db, []).stored() == []


def test_removing_a_did_ends_its_session_at_the_next_request(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    assert site.cli("admin", "remove-did", admin_did).exit_code == 0
    client_id = fresh_id("gone")
    assert browser.post("/admin/clients", client_form(client_id)).status_code == 403
    assert site.services.clients.get(client_id) is None
    assert "Log in with your wallet" in browser.get("/admin/").text
    assert browser.get("/admin/clients/new").status_code == 303


def test_a_forged_or_expired_session_cookie_is_no_session(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    real = browser.http.cookies.get("opendid_admin", path="/admin")
    for forged in (real.upper(), real[:-1], real + "A", "x" * len(real)):
        jar = requests.Session()
        jar.cookies.set("opendid_admin", forged, path="/admin")
        assert jar.get(site.url + "/admin/", allow_redirects=False,
                       timeout=30).text.count("Log in with your wallet")
    site.services.clients.db.connect().execute("UPDATE admin_sessions SET expires_at = 0")
    assert "Log in with your wallet" in browser.get("/admin/").text


def test_logout_ends_the_session(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    assert browser.post("/admin/logout").status_code == 303
    assert "Log in with your wallet" in browser.get("/admin/").text


# -- the admin login's callback --------------------------------------------------------------


def test_a_callback_with_another_state_is_refused(site, wallet, chain, admin_did):
    driver, callback = wallet_login(site, wallet, chain)
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    answer = driver.http.get(tampered, allow_redirects=False, timeout=30)
    assert answer.status_code == 400
    assert driver.http.cookies.get("opendid_admin", path="/admin") is None
    # the pending login was taken: the genuine answer now fails too
    assert driver.http.get(callback, allow_redirects=False, timeout=30).status_code == 400


def test_a_head_request_does_not_use_up_the_callback(site, wallet, chain, admin_did):
    driver, callback = wallet_login(site, wallet, chain)
    assert driver.http.head(callback, allow_redirects=False, timeout=30).status_code == 204
    assert driver.http.get(callback, allow_redirects=False, timeout=30).status_code == 303


def test_a_callback_in_a_browser_without_the_login_is_refused(site, wallet, chain, admin_did):
    _, callback = wallet_login(site, wallet, chain)
    stranger = requests.Session()
    assert stranger.get(callback, allow_redirects=False, timeout=30).status_code == 400


def test_a_code_from_another_admin_login_is_refused_by_pkce(site, wallet, chain, admin_did):
    """An attacker's own code, put into the victim's callback with the victim's state: the
    code's PKCE challenge and nonce are the attacker's login's, not this browser's."""
    victim, victim_callback = wallet_login(site, wallet, chain)
    _, attacker_callback = wallet_login(site, wallet, chain)
    attacker_code = result_params(attacker_callback)["code"]
    injected = re.sub(r"code=[^&]+", f"code={attacker_code}", victim_callback)
    answer = victim.http.get(injected, allow_redirects=False, timeout=30)
    assert answer.status_code == 400 and "not issued for this browser" in answer.text


def test_a_code_of_another_client_is_refused(site, wallet, chain, admin_did):
    driver, callback = wallet_login(site, wallet, chain)
    other = LoginDriver(site.url, wallet, chain)
    started = other.authorize(client_id="did-client", redirect_uri="http://127.0.0.1:1606/"
                              "callback.html", response_type="code", state="s", nonce="n")
    nonce = parse_qs(urlsplit(started.headers["Location"]).query)["nonce"][0]
    foreign = result_params(other.did_login(other.did_token(nonce)).headers["Location"])["code"]
    injected = re.sub(r"code=[^&]+", f"code={foreign}", callback)
    answer = driver.http.get(injected, allow_redirects=False, timeout=30)
    assert answer.status_code == 400 and "not issued for the admin page" in answer.text


def test_racing_callbacks_of_one_login_make_one_session(site, wallet, chain, admin_did):
    driver, callback = wallet_login(site, wallet, chain)
    cookies = driver.http.cookies.get_dict()
    db = site.services.clients.db

    def sessions() -> int:
        return int(db.connect().execute("SELECT COUNT(*) FROM admin_sessions").fetchone()[0])

    def answer() -> int:
        return requests.get(callback, cookies=cookies, allow_redirects=False,
                            timeout=30).status_code

    before = sessions()
    assert sorted(race([answer] * 4)) == [303, 400, 400, 400]
    assert sessions() == before + 1


def test_a_replayed_callback_is_refused(site, wallet, chain, admin_did):
    driver, callback = wallet_login(site, wallet, chain)
    assert driver.http.get(callback, allow_redirects=False, timeout=30).status_code == 303
    # a second pending login in the same browser, answered with the first (used) code
    _, second = wallet_login(site, wallet, chain, driver.http)
    used = result_params(callback)["code"]
    replay = re.sub(r"code=[^&]+", f"code={used}", second)
    answer = driver.http.get(replay, allow_redirects=False, timeout=30)
    assert answer.status_code == 400
    assert driver.http.get(callback, allow_redirects=False, timeout=30).status_code == 400


def test_a_code_redeemed_at_the_token_endpoint_first_is_refused(site, wallet, chain, admin_did):
    """Whoever holds the login's verifier could redeem the code at /token: the callback then
    finds it used (one atomic redemption, shared with /token), and logs nobody in."""
    driver, callback = wallet_login(site, wallet, chain)
    login_id = driver.http.cookies.get("opendid_admin_login", path="/admin")
    pending = site.services.onetime.peek(PENDING_KIND, login_id)
    tokens = driver.token(grant_type="authorization_code", code=result_params(callback)["code"],
                          redirect_uri=callback_url(site.url), client_id=ADMIN_CLIENT_ID,
                          code_verifier=pending["verifier"])
    assert tokens.status_code == 200, tokens.text
    answer = driver.http.get(callback, allow_redirects=False, timeout=30)
    assert answer.status_code == 400 and "already used" in answer.text
    assert driver.http.cookies.get("opendid_admin", path="/admin") is None


# -- CSRF ---------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_changes_nothing(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("csrf")
    answer = browser.http.post(site.url + "/admin/clients", data=client_form(client_id),
                               allow_redirects=False, timeout=30)
    assert answer.status_code == 403 and "not sent by this page" in answer.text
    assert site.services.clients.get(client_id) is None
    # the same request with the token goes through: the check above is what refused it
    assert browser.post("/admin/clients", client_form(client_id)).status_code == 201


@pytest.mark.parametrize("how", ["wrong", "upper-case", "trailing space", "truncated", "empty"])
def test_a_wrong_csrf_token_changes_nothing(site, wallet, chain, admin_did, how):
    browser = log_in(site, wallet, chain)
    real = browser.csrf
    token = {"wrong": "x" * len(real), "upper-case": real.upper(), "trailing space": real + " ",
             "truncated": real[:-1], "empty": ""}[how]
    assert token != real
    client_id = fresh_id("csrf")
    answer = browser.http.post(site.url + "/admin/clients",
                               data={**client_form(client_id), "csrf_token": token},
                               allow_redirects=False, timeout=30)
    assert answer.status_code == 403
    assert site.services.clients.get(client_id) is None


def test_another_sessions_csrf_token_is_refused(site, wallet, chain, admin_did):
    first = log_in(site, wallet, chain)
    second = log_in(site, wallet, chain)
    assert first.csrf != second.csrf
    client_id = fresh_id("csrf")
    answer = first.post("/admin/clients", client_form(client_id), csrf=second.csrf)
    assert answer.status_code == 403
    answer = first.post(f"/admin/clients/{client_id}/delete", csrf=second.csrf)
    assert answer.status_code == 403
    assert site.services.clients.get(client_id) is None


def test_the_csrf_header_counts_and_must_match_a_form_token(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("hdr")
    answer = browser.http.post(site.url + "/admin/clients", data=client_form(client_id),
                               headers={"X-CSRF-Token": browser.csrf}, allow_redirects=False,
                               timeout=60)
    assert answer.status_code == 201
    answer = browser.http.post(site.url + f"/admin/clients/{client_id}/delete",
                               data={"csrf_token": browser.csrf},
                               headers={"X-CSRF-Token": "x" * len(browser.csrf)},
                               allow_redirects=False, timeout=30)
    assert answer.status_code == 403
    assert site.services.clients.get(client_id) is not None


def test_logged_out_posts_are_refused(site):
    anonymous = requests.Session()
    client_id = fresh_id("anon")
    answer = anonymous.post(site.url + "/admin/clients", data=client_form(client_id),
                            allow_redirects=False, timeout=30)
    assert answer.status_code == 403
    assert site.services.clients.get(client_id) is None


# -- the client form --------------------------------------------------------------------------


BAD_FORMS = {
    "client id with a space": ({"client_id": "a b"}, "client_id"),
    "empty client id": ({"client_id": ""}, "client_id"),
    "no redirect URI": ({"redirect_urls": "  \n "}, "redirect_urls"),
    "javascript redirect": ({"redirect_urls": "javascript:alert(1)"}, "redirect_urls"),
    "redirect with a fragment": ({"redirect_urls": "https://a.example/cb#x"}, "redirect_urls"),
    "redirect twice": ({"redirect_urls": "https://a.example/cb\nhttps://a.example/cb"},
                       "redirect_urls"),
    "unknown kind": ({"kind": "secret"}, "kind"),
    "public with OpenDID tokens": ({"kind": "public", "token_style": "opendid"}, "token_style"),
    "unknown algorithm": ({"token_style": "standard", "alg": "none"}, "alg"),
    "upper-case ctype too short": ({"req-0-ctype": "0x1234"}, "req-0-ctype"),
    "ctype without 0x": ({"req-0-ctype": "ab" * 32}, "req-0-ctype"),
    "attester not a DID": ({"req-0-ctype": UNKNOWN_CTYPE, "req-0-attesters": "alice"},
                           "req-0-attesters"),
    "attester a light DID": ({"req-0-ctype": UNKNOWN_CTYPE,
                              "req-0-attesters": "did:kilt:light:004abc"}, "req-0-attesters"),
    "property with a space": ({"req-0-ctype": UNKNOWN_CTYPE, "req-0-properties": "E mail"},
                              "req-0-properties"),
    "claim map of sub": ({"claim_map": "sub = Email"}, "claim_map"),
    "claim map without =": ({"claim_map": "email"}, "claim_map"),
    "claim map property with a NUL": ({"claim_map": "email = Em\x00ail"}, "claim_map"),
    "property with a control character": ({"req-0-ctype": UNKNOWN_CTYPE,
                                           "req-0-properties": "Email\x07"}, "req-0-properties"),
}


@pytest.mark.parametrize("case", sorted(BAD_FORMS))
def test_bad_input_is_a_400_with_the_form_and_its_error(site, wallet, chain, admin_did, case):
    browser = log_in(site, wallet, chain)
    fields, field = BAD_FORMS[case]
    client_id = fresh_id("bad")
    before = len(site.services.clients.all())
    answer = browser.post("/admin/clients", {**client_form(client_id), **fields})
    assert answer.status_code == 400, answer.text
    assert f'id="{field}-error"' in answer.text
    assert 'name="csrf_token"' in answer.text  # the form again, ready to fix
    assert site.services.clients.get(client_id) is None
    assert len(site.services.clients.all()) == before


def test_an_unknown_ctype_is_refused_by_the_chain_check(site, wallet, chain, admin_did,
                                                        provisioned):
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("ctype")
    answer = browser.post("/admin/clients", client_form(
        client_id, **{"req-0-ctype": UNKNOWN_CTYPE,
                      "req-0-attesters": provisioned["attester"]["did"]}))
    assert answer.status_code == 400
    assert f"CType {UNKNOWN_CTYPE} does not exist on chain" in answer.text
    assert site.services.clients.get(client_id) is None


def test_an_attester_that_does_not_resolve_is_refused(site, wallet, chain, admin_did,
                                                      provisioned):
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("attester")
    nobody = full_did_from_account(os.urandom(32)).uri
    answer = browser.post("/admin/clients", client_form(
        client_id, **{"req-0-ctype": provisioned["ctype"],
                      "req-0-attesters": f"{provisioned['attester']['did']}\n{nobody}"}))
    assert answer.status_code == 400
    assert f"{nobody} does not resolve on chain" in answer.text
    assert site.services.clients.get(client_id) is None


def test_a_client_with_checked_requirements_is_created_normalised(site, wallet, chain,
                                                                  admin_did, provisioned,
                                                                  caplog):
    caplog.set_level(logging.INFO, AUDIT)
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("good")
    attester = provisioned["attester"]["did"]
    answer = browser.post("/admin/clients", client_form(
        client_id, token_style="standard", alg="ES256", claim_map="email = Email",
        **{"req-0-ctype": provisioned["ctype"].upper().replace("0X", "0x"),
           "req-0-attesters": did_respellings(attester)["generic prefix 42"],
           "req-0-properties": "Email"}))
    assert answer.status_code == 201, answer.text
    secret = re.search(r'id="client-secret">([^<]+)<', answer.text).group(1)
    record = site.services.clients.get(client_id)
    assert record.requirements == [{"cTypeHash": provisioned["ctype"],
                                    "trustedAttesters": [attester],
                                    "requiredProperties": ["Email"]}]
    assert record.id_token_alg == "ES256" and record.claim_map == {"email": "Email"}
    assert record.client_secret.startswith(HASH_PREFIX)
    assert client_secret_matches(record.client_secret, secret)
    assert site.services.clients.source(client_id) == "admin"
    assert f"admin {admin_did} created client {client_id}" in caplog.text
    assert secret not in caplog.text and record.client_secret not in caplog.text
    # the edit page shows it, without the secret
    edit = browser.get(f"/admin/clients/{client_id}")
    assert edit.status_code == 200 and secret not in edit.text
    assert provisioned["ctype"] in edit.text


def test_secret_rotation_shows_a_new_secret_once_and_the_old_one_stops(site, wallet, chain,
                                                                       admin_did, caplog):
    caplog.set_level(logging.INFO, AUDIT)
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("rotate")
    created = browser.post("/admin/clients", client_form(client_id))
    old = re.search(r'id="client-secret">([^<]+)<', created.text).group(1)
    browser.get(f"/admin/clients/{client_id}")
    rotated = browser.post(f"/admin/clients/{client_id}/secret")
    assert rotated.status_code == 200
    new = re.search(r'id="client-secret">([^<]+)<', rotated.text).group(1)
    stored = site.services.clients.get(client_id).client_secret
    assert new != old and client_secret_matches(stored, new)
    assert not client_secret_matches(stored, old)
    assert f"admin {admin_did} rotated the secret of client {client_id}" in caplog.text
    assert new not in caplog.text and old not in caplog.text


def test_a_public_client_has_no_secret_to_rotate(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("public")
    assert browser.post("/admin/clients", client_form(
        client_id, kind="public", token_style="standard")).status_code == 201
    assert "client-secret" not in browser.get(f"/admin/clients/{client_id}").text
    assert browser.post(f"/admin/clients/{client_id}/secret").status_code == 400
    assert site.services.clients.get(client_id).client_secret is None


def test_editing_keeps_the_secret_and_what_the_form_does_not_show(site, wallet, chain,
                                                                  admin_did, caplog):
    caplog.set_level(logging.INFO, AUDIT)
    site.services.clients.upsert(ClientRecord(
        "cli-made", "sha256$" + "0" * 64, ["https://old.example/cb"], [], None, ("code",),
        True, ["https://old.example/bye"]), source="cli")
    browser = log_in(site, wallet, chain)
    assert browser.get("/admin/clients/cli-made").status_code == 200
    answer = browser.post("/admin/clients/cli-made", client_form(
        redirect_urls="https://new.example/cb"))
    assert answer.status_code == 200 and "client-secret" not in answer.text
    record = site.services.clients.get("cli-made")
    assert record.redirect_urls == ["https://new.example/cb"]
    assert record.client_secret == "sha256$" + "0" * 64
    assert record.response_types == ("code",) and record.refresh_requires_client_auth
    assert record.post_logout_redirect_urls == ["https://old.example/bye"]
    assert site.services.clients.source("cli-made") == "cli"
    assert f"admin {admin_did} updated client cli-made" in caplog.text
    assert browser.post("/admin/clients/cli-made/delete").status_code == 303
    assert site.services.clients.get("cli-made") is None
    assert f"admin {admin_did} deleted client cli-made" in caplog.text


def test_an_existing_client_id_cannot_be_created_again(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    for taken in ("rp-client", ADMIN_CLIENT_ID):
        before = site.services.clients.get(taken)
        answer = browser.post("/admin/clients", client_form(taken))
        assert answer.status_code == 409 and "exists already" in answer.text
        assert site.services.clients.get(taken) == before


@pytest.mark.parametrize("client_id", ["rp-client", ADMIN_CLIENT_ID, "etcd-made"])
def test_read_only_clients_are_refused_even_when_posted_by_hand(site, wallet, chain, admin_did,
                                                                client_id):
    if client_id == "etcd-made":
        site.services.clients.upsert(ClientRecord(client_id, SECRET, ["https://e.example/cb"]),
                                     source="etcd")
    before = site.services.clients.get(client_id)
    browser = log_in(site, wallet, chain)
    page = browser.get(f"/admin/clients/{client_id}")
    assert page.status_code == 200 and 'action="/admin/clients/' not in page.text
    assert "change it there" in page.text
    for path, form in ((f"/admin/clients/{client_id}",
                        client_form(redirect_urls="https://evil.example/cb")),
                       (f"/admin/clients/{client_id}/secret", {}),
                       (f"/admin/clients/{client_id}/delete", {})):
        answer = browser.post(path, form)
        assert answer.status_code == 403, (path, answer.text)
        assert "change it there" in answer.text
    assert site.services.clients.get(client_id) == before


def test_unknown_clients_are_404(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    assert browser.get("/admin/clients/nobody").status_code == 404
    assert browser.post("/admin/clients/nobody", client_form()).status_code == 404
    assert browser.post("/admin/clients/nobody/delete").status_code == 404
    assert site.services.clients.get("nobody") is None


def test_a_client_made_here_logs_in_and_stops_when_deleted(site, wallet, chain, admin_did):
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("works")
    redirect = "https://works.example/cb"
    created = browser.post("/admin/clients", client_form(client_id, redirect_urls=redirect))
    secret = re.search(r'id="client-secret">([^<]+)<', created.text).group(1)
    user = LoginDriver(site.url, wallet, chain)
    started = user.authorize(client_id=client_id, redirect_uri=redirect, response_type="code",
                             state="st", nonce="nn")
    nonce = parse_qs(urlsplit(started.headers["Location"]).query)["nonce"][0]
    code = result_params(user.did_login(user.did_token(nonce)).headers["Location"])["code"]
    tokens = user.token(grant_type="authorization_code", code=code, redirect_uri=redirect,
                        client_id=client_id, client_secret=secret)
    assert tokens.status_code == 200, tokens.text
    browser.get(f"/admin/clients/{client_id}")
    assert browser.post(f"/admin/clients/{client_id}/delete").status_code == 303
    refused = user.authorize(client_id=client_id, redirect_uri=redirect, response_type="code",
                             state="st", nonce="nn")
    assert refused.status_code == 400


def test_an_unreachable_chain_saves_nothing(site, wallet, chain, admin_did, provisioned,
                                            monkeypatch):
    browser = log_in(site, wallet, chain)
    down = ChainClient("ws://127.0.0.1:9", timeout=1, max_backoff=0.1)
    monkeypatch.setattr(site.app.extensions["opendid-admin"].clients, "chain", down)
    client_id = fresh_id("down")
    answer = browser.post("/admin/clients", client_form(
        client_id, **{"req-0-ctype": provisioned["ctype"],
                      "req-0-attesters": provisioned["attester"]["did"]}))
    assert answer.status_code == 503 and "nothing was saved" in answer.text
    assert site.services.clients.get(client_id) is None


# -- enabling, config and CLI -----------------------------------------------------------------


def test_add_did_lists_and_removes_the_canonical_did(site, wallet):
    spelled = did_respellings(wallet.did)["generic prefix 42"]
    added = site.cli("admin", "add-did", spelled)
    assert added.exit_code == 0 and wallet.did in added.output
    assert site.cli("admin", "list-dids").output.split() == [wallet.did]
    assert site.cli("admin", "remove-did", wallet.did).exit_code == 0
    assert site.cli("admin", "list-dids").output.split() == []
    assert site.cli("admin", "remove-did", wallet.did).exit_code != 0


def test_the_cli_leaves_the_built_in_admin_client_alone(site):
    before = site.services.clients.get(ADMIN_CLIENT_ID)
    assert site.cli("clients", "add", ADMIN_CLIENT_ID, "--redirect-url",
                    "https://evil.example/cb").exit_code != 0
    assert site.cli("clients", "remove", ADMIN_CLIENT_ID).exit_code != 0
    assert site.services.clients.get(ADMIN_CLIENT_ID) == before


def test_bad_admin_config_is_an_error_naming_the_key(provisioned, tmp_path):
    from opendid.config import ConfigError, load_config

    path = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:1",
                             ["http://127.0.0.1:1/cb"],
                             admin={"enabled": True, "dids": ["did:kilt:nobody"]})
    named = re.escape("key 'admin.dids': Value error, 'did:kilt:nobody'")
    with pytest.raises(ConfigError, match=named):
        load_config(path)
    data = yaml.safe_load(path.read_text())
    data["admin"] = {"enabled": True, "sessionLifetime": 0}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=re.escape("key 'admin.sessionLifetime'")):
        load_config(path)
    data["admin"] = {"enabled": True}
    data["clients"][ADMIN_CLIENT_ID] = {"redirectUrls": ["https://a.example/cb"]}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=re.escape(f"clients.{ADMIN_CLIENT_ID}")):
        load_config(path)


def test_the_admin_page_and_its_client_exist_only_when_enabled(provisioned, tmp_path):
    path = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:1",
                             ["http://127.0.0.1:1/cb"], admin={"enabled": True})
    instance = tmp_path / "instance"
    app = create_app(path, instance_path=instance)
    store = app.extensions["opendid"].clients
    assert store.source(ADMIN_CLIENT_ID) == "builtin"
    assert store.get(ADMIN_CLIENT_ID).redirect_urls == ["http://127.0.0.1:1/admin/callback"]
    assert store.get(ADMIN_CLIENT_ID).requirements == []
    assert app.test_client().get("/admin/").status_code == 200
    app.extensions["opendid"].chain.close()
    data = yaml.safe_load(path.read_text())
    del data["admin"]
    path.write_text(yaml.safe_dump(data))
    app = create_app(path, instance_path=instance)
    assert app.extensions["opendid"].clients.get(ADMIN_CLIENT_ID) is None
    assert app.test_client().get("/admin/").status_code == 404
    app.extensions["opendid"].chain.close()


# -- garbage -------------------------------------------------------------------------------------

FIELDS = ["client_id", "redirect_urls", "kind", "token_style", "alg", "claim_map",
          *(f"req-{i}-{part}" for i in range(2) for part in ("ctype", "attesters", "properties"))]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
GOOD_VALUES = st.sampled_from(["confidential", "public", "opendid", "standard", "RS256",
                               "https://a.example/cb", "0x" + "ab" * 32, "email = Email",
                               "Email", "did:kilt:" + "4" * 47, ""])


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(form=st.dictionaries(st.sampled_from(FIELDS), st.one_of(TEXT, GOOD_VALUES), max_size=12),
       target=st.sampled_from(["/admin/clients", "/admin/clients/cli-garbage",
                               "/admin/clients/cli-garbage/secret"]))
def test_garbage_forms_are_a_4xx_and_change_nothing(site, wallet, admin_did, form, target):
    """Through Flask's test client with a real admin session: never a 500; anything but a
    success leaves the clients as they were."""
    store = site.services.clients
    if store.get("cli-garbage") is None:
        store.upsert(ClientRecord("cli-garbage", "sha256$" + "1" * 64, ["https://g.example/cb"]),
                     source="cli")
    session_id, session = site.app.extensions["opendid-admin"].sessions.create(wallet.did, 60)
    client = site.app.test_client()
    client.set_cookie("opendid_admin", session_id, path="/admin")
    before = {c.client_id: c for c in store.all()}
    answer = client.post(target, data={**form, "csrf_token": session.csrf})
    assert answer.status_code < 500, answer.text
    if answer.status_code not in (200, 201):
        assert {c.client_id: c for c in store.all()} == before


def test_racing_creates_of_one_client_id_make_one_client(site, wallet, chain, admin_did,
                                                        provisioned):
    """Each create reads the chain between its first look and its write: without one atomic
    check-and-write, several would "create" the client, each showing a secret that fails."""
    browser = log_in(site, wallet, chain)
    client_id = fresh_id("race")
    cookies, csrf = browser.http.cookies.get_dict(), browser.csrf
    form = client_form(client_id, **{"req-0-ctype": provisioned["ctype"],
                                     "req-0-attesters": provisioned["attester"]["did"]})

    def create() -> tuple[int, str]:
        answer = requests.post(site.url + "/admin/clients",
                               data={**form, "csrf_token": csrf},
                               cookies=cookies, allow_redirects=False, timeout=60)
        found = re.search(r'id="client-secret">([^<]+)<', answer.text)
        return answer.status_code, found.group(1) if found else ""

    results = race([create] * 6)
    assert sorted(status for status, _ in results) == [201, 409, 409, 409, 409, 409]
    (secret,) = [secret for status, secret in results if status == 201]
    assert client_secret_matches(site.services.clients.get(client_id).client_secret, secret)

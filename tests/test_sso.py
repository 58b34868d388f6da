"""Single sign-on over real HTTP: the provider session answers a standard client's second
authorization request without the wallet when it covers it, and only then; prompt, max_age and
id_token_hint as an attacker would try them (forged cookies, another user's hint, another
client's policy, an expired session).

Time passing is written into the session row (its `auth_time`/`expires_at`), never slept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import pytest
import requests
from joserfc import jwt

from conftest import OPENDID_REDIRECT, SECRET, STANDARD_REDIRECT
from opendid.application import create_app
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims, result_params
from opendid.login.identity import Identity
from opendid.oidc.authorize import AuthRequest
from opendid.oidc.sso import Refuse, Reuse, ShowLogin, SingleSignOn
from opendid.store.clients import ClientRecord
from opendid.store.db import Database
from opendid.store.sso import SsoStore, requirements_fingerprint
from opendid.web import sso_cookie
from tests.test_config import production_sample, write

STANDARD = {"client_id": "standard-client", "redirect_uri": STANDARD_REDIRECT,
            "response_type": "code", "scope": "openid", "state": "s1", "nonce": "n1"}
COOKIE = "opendid_sso"


def requirement(provisioned: dict[str, Any], properties: list[str]) -> list[dict[str, Any]]:
    return [{"cTypeHash": provisioned["ctype"],
             "trustedAttesters": [provisioned["attester"]["did"]],
             "requiredProperties": properties}]


def register(opendid, client_id: str, requirements: list[dict[str, Any]], **extra: Any) -> None:
    """A standard client added to the running provider (as `opendid clients add` would)."""
    opendid.services.clients.upsert(ClientRecord(
        client_id=client_id, client_secret=SECRET, redirect_urls=[STANDARD_REDIRECT],
        requirements=requirements, id_token_alg="RS256", **extra))


def redeem(driver: LoginDriver, code: str, client_id: str = "standard-client") -> dict[str, Any]:
    response = driver.token(grant_type="authorization_code", code=code,
                            redirect_uri=STANDARD_REDIRECT, client_id=client_id,
                            client_secret=SECRET)
    assert response.status_code == 200, response.text
    return response.json()


def logged_in(driver: LoginDriver, **params: str) -> dict[str, Any]:
    """A wallet login of a standard client; the id_token's claims."""
    result = driver.login(**{**STANDARD, **params})
    return decode_jwt_claims(redeem(driver, result["code"], params.get("client_id",
                                                                       "standard-client"))
                             ["id_token"])


def silent(driver: LoginDriver, **params: str) -> requests.Response:
    return driver.authorize(**{**STANDARD, "prompt": "none", "state": "silent", **params})


def at_client(response: requests.Response, redirect: str = STANDARD_REDIRECT) -> dict[str, str]:
    """The parameters of an answer that went straight back to the client (no page shown)."""
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(redirect), location
    return result_params(location)


def to_login_page(response: requests.Response) -> None:
    assert response.status_code == 302, response.text
    assert response.headers["Location"].split("?")[0] == "/"


def row_key(driver: LoginDriver) -> str:
    return hashlib.sha256(driver.http.cookies[COOKIE].encode()).hexdigest()


def age_session(opendid, driver: LoginDriver, seconds: int) -> None:
    """As if the wallet login had happened `seconds` earlier."""
    opendid.services.sso.db.connect().execute(
        "UPDATE sso_sessions SET auth_time = auth_time - ? WHERE id_hash = ?",
        (seconds, row_key(driver)))


def fresh(driver: LoginDriver, cookie: str | None = None) -> LoginDriver:
    other = LoginDriver(driver.base_url, driver.wallet, driver.chain)
    if cookie is not None:
        other.http.cookies.set(COOKIE, cookie, path="/api/v1")
    return other


# -- reuse ---------------------------------------------------------------------------------------


def test_a_second_request_is_answered_without_the_wallet_with_the_original_auth_time(
        driver, provisioned):
    first = logged_in(driver)
    again = at_client(driver.authorize(**{**STANDARD, "state": "s2", "nonce": "n2"}))
    assert again["state"] == "s2"
    claims = decode_jwt_claims(redeem(driver, again["code"])["id_token"])
    assert claims["sub"] == provisioned["user"]["did"] == first["sub"]
    assert claims["nonce"] == "n2"
    assert claims["auth_time"] == first["auth_time"]
    assert claims["pro"] == {"Email": "some@example.org"}


def test_the_session_cookie_is_http_only_lax_and_scoped(driver):
    result = driver.authorize(**STANDARD)
    assert result.status_code == 302
    login_session = driver.http.cookies["opendid"]
    driver.open_session()
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204
    [header] = [h for h in done.raw.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    attributes = {part.strip().split("=")[0].lower(): part for part in header.split(";")}
    assert "httponly" in attributes and "secure" not in attributes
    assert attributes["samesite"].strip() == "SameSite=Lax"
    assert attributes["path"].strip() == "Path=/api/v1"
    value = driver.http.cookies[COOKIE]
    assert len(base64.urlsafe_b64decode(value + "=")) == 32  # 256 random bits
    assert login_session != value  # not Flask's per-login session


def test_only_the_hash_of_the_session_id_is_stored(driver, opendid):
    logged_in(driver)
    value = driver.http.cookies[COOKIE]
    rows = opendid.services.sso.db.connect().execute("SELECT * FROM sso_sessions").fetchall()
    assert not any(value in str(column) for row in rows for column in row)
    assert any(row[0] == row_key(driver) for row in rows)


def test_the_session_cookie_is_secure_in_production(tmp_path):
    app = create_app(write(tmp_path, production_sample()), instance_path=tmp_path / "instance")
    with app.test_request_context("/api/v1/authorize"):
        from flask import Response
        response = Response()
        sso_cookie.store(response, "x" * 43)
        assert "Secure" in response.headers["Set-Cookie"]


def test_prompt_none_is_answered_from_the_session(driver):
    logged_in(driver)
    params = at_client(silent(driver))
    assert params["state"] == "silent" and "code" in params


def test_prompt_none_without_a_session_gets_login_required_at_the_client(driver):
    response = silent(driver)
    params = at_client(response)
    assert params == {"error": "login_required", "state": "silent", "iss": driver.base_url,
                      "error_description": params["error_description"]}
    assert "Set-Cookie" not in response.headers  # no login started: nothing shown, nothing kept


@pytest.mark.parametrize("response_type", ["id_token", "id_token token"])
def test_prompt_none_error_of_an_implicit_request_is_in_the_fragment(driver, response_type):
    response = silent(driver, response_type=response_type)
    assert response.headers["Location"].startswith(STANDARD_REDIRECT + "#error=login_required")


def test_implicit_silent_renew_from_the_session(driver, opendid, provisioned):
    first = logged_in(driver)
    params = at_client(silent(driver, response_type="id_token token", nonce="renew"))
    claims = decode_jwt_claims(params["id_token"])
    assert claims["sub"] == provisioned["user"]["did"] and claims["nonce"] == "renew"
    assert claims["auth_time"] == first["auth_time"]
    info = requests.get(opendid.url + "/api/v1/userinfo",
                        headers={"Authorization": f"Bearer {params['access_token']}"})
    assert info.json()["sub"] == provisioned["user"]["did"]


def test_an_opendid_style_login_creates_the_session_but_its_clients_keep_the_wallet(driver):
    driver.login(client_id="opendid-client", redirect_uri=OPENDID_REDIRECT,
                 response_type="code", state="o", nonce="o")
    assert COOKIE in driver.http.cookies
    # OpenDID-style: always the wallet, even when asked for prompt=none (original behaviour)
    to_login_page(driver.authorize(client_id="opendid-client", redirect_uri=OPENDID_REDIRECT,
                                   response_type="code", state="o2", prompt="none"))
    # a standard client with the same requirements is answered from that login
    assert "code" in at_client(silent(driver))


# -- which clients a session covers ----------------------------------------------------------------


def test_a_did_only_client_is_covered_but_never_gets_the_credential(driver, opendid,
                                                                     provisioned):
    register(opendid, "did-standard-client", [])
    logged_in(driver)
    params = at_client(silent(driver, client_id="did-standard-client"))
    claims = decode_jwt_claims(redeem(driver, params["code"], "did-standard-client")["id_token"])
    assert claims["sub"] == provisioned["user"]["did"]
    assert claims["pro"] == {}  # the Email shown to standard-client stays with it
    assert claims["w3n"] == provisioned["user"]["web3name"]


def test_a_client_with_identical_requirements_is_covered(driver, opendid, provisioned):
    # same policy, spelled in another order: one fingerprint
    register(opendid, "twin-client", [{
        "requiredProperties": ["Email"], "trustedAttesters": [provisioned["attester"]["did"]],
        "cTypeHash": provisioned["ctype"]}])
    logged_in(driver)
    params = at_client(silent(driver, client_id="twin-client"))
    claims = decode_jwt_claims(redeem(driver, params["code"], "twin-client")["id_token"])
    assert claims["pro"] == {"Email": "some@example.org"}


def test_a_credential_client_with_other_requirements_is_not_answered(driver, opendid,
                                                                     provisioned):
    register(opendid, "other-policy-client", requirement(provisioned, []))
    logged_in(driver)
    params = at_client(silent(driver, client_id="other-policy-client"))
    assert (params["error"], params["state"]) == ("interaction_required", "silent")
    # without prompt=none: the login page, which names who is logged in
    shown = driver.authorize(**{**STANDARD, "client_id": "other-policy-client"})
    to_login_page(shown)
    page = driver.http.get(driver.url("/"))
    assert f"w3n:{provisioned['user']['web3name']}" in page.text
    assert "continue" in page.text


def test_a_client_whose_requirements_changed_is_not_answered_from_the_old_login(
        driver, opendid, provisioned):
    register(opendid, "changing-client", requirement(provisioned, ["Email"]))
    logged_in(driver, client_id="changing-client")
    assert "code" in at_client(silent(driver, client_id="changing-client"))
    register(opendid, "changing-client", requirement(provisioned, []))
    params = at_client(silent(driver, client_id="changing-client"))
    assert params["error"] == "interaction_required"


# -- prompt and max_age -------------------------------------------------------------------------


def test_prompt_login_always_shows_the_wallet(driver):
    logged_in(driver)
    to_login_page(driver.authorize(**{**STANDARD, "prompt": "login"}))
    to_login_page(driver.authorize(**{**STANDARD, "prompt": "select_account"}))


@pytest.mark.parametrize("max_age", ["0", "1"])
def test_a_session_older_than_max_age_is_not_reused(driver, opendid, max_age):
    logged_in(driver)
    age_session(opendid, driver, 1)
    params = at_client(silent(driver, max_age=max_age))
    assert (params["error"], params["state"]) == ("login_required", "silent")
    to_login_page(driver.authorize(**{**STANDARD, "max_age": max_age}))


def test_max_age_0_shows_the_wallet_even_for_a_session_of_this_second(driver):
    logged_in(driver)
    assert at_client(silent(driver, max_age="0"))["error"] == "login_required"


def test_a_session_younger_than_max_age_is_reused_with_auth_time(driver, opendid):
    first = logged_in(driver)
    age_session(opendid, driver, 9000)
    params = at_client(silent(driver, max_age="10000"))
    claims = decode_jwt_claims(redeem(driver, params["code"])["id_token"])
    assert claims["auth_time"] == first["auth_time"] - 9000


def test_after_a_fresh_login_auth_time_moves_on(driver, opendid):
    first = logged_in(driver)
    age_session(opendid, driver, 100)
    second = logged_in(driver, prompt="login")  # prompt=login: the wallet again
    assert second["auth_time"] >= first["auth_time"]
    claims = decode_jwt_claims(redeem(driver, at_client(silent(driver))["code"])["id_token"])
    assert claims["auth_time"] == second["auth_time"]


def test_an_expired_session_is_not_reused(driver, opendid):
    logged_in(driver)
    assert "code" in at_client(silent(driver))
    opendid.services.sso.db.connect().execute(
        "UPDATE sso_sessions SET expires_at = ? WHERE id_hash = ?",
        (time.time() - 1, row_key(driver)))
    assert at_client(silent(driver))["error"] == "login_required"


def test_a_revoked_credential_is_not_answered_from_the_session(driver, opendid, monkeypatch):
    """The call point for the attestation re-check (issue 7 §3): when it says no, no reuse."""
    logged_in(driver)
    checked: list[Identity] = []

    def revoked(identity: Identity) -> bool:
        checked.append(identity)
        return False

    monkeypatch.setattr(opendid.services.single_sign_on, "still_valid", revoked)
    assert at_client(silent(driver))["error"] == "login_required"
    assert checked and checked[0].root_hash is not None


# -- forged and stolen cookies --------------------------------------------------------------------


def forged_variants(real: str) -> list[str]:
    return [
        secrets.token_urlsafe(32),                      # a guess of the right shape
        real.swapcase(),                                # the same value, other case
        real + "=",                                     # padded
        real[:-1],                                      # truncated
        hashlib.sha256(real.encode()).hexdigest(),      # the row key itself
        base64.b64encode(base64.urlsafe_b64decode(real + "=")).decode(),  # other alphabet
        "",
    ]


def test_a_forged_cookie_does_not_answer(driver):
    logged_in(driver)
    real = driver.http.cookies[COOKIE]
    assert "code" in at_client(silent(fresh(driver, real)))  # the real value does
    for value in forged_variants(real):
        if value == real:
            continue
        response = silent(fresh(driver, value))
        assert at_client(response).get("error") == "login_required", repr(value)


def test_a_new_login_gets_a_new_session_id(driver):
    """No session fixation: a cookie planted before a login is not the one after it."""
    logged_in(driver)
    planted = driver.http.cookies[COOKIE]
    logged_in(driver, prompt="login")
    assert driver.http.cookies[COOKIE] != planted
    assert at_client(silent(fresh(driver, planted)))["error"] == "login_required"


# -- id_token_hint ---------------------------------------------------------------------------------


def hint_for(opendid, did: str, client_id: str = "standard-client", **claims: Any) -> str:
    """An ID token the provider itself signed for `did` (the test has one wallet: another user's
    token comes from the provider's own token service)."""
    client = opendid.services.clients.get(client_id)
    token = opendid.services.tokens.id_token(client, Identity(did, None, {}, int(time.time())),
                                             "n")
    if not claims:
        return str(token)
    payload = {**decode_jwt_claims(token), **claims}
    key = opendid.services.keyring.signing_key("RS256")
    return str(jwt.encode({"alg": "RS256", "kid": key.kid}, payload, key))


def test_a_hint_of_the_logged_in_user_is_answered_even_when_expired(driver, opendid,
                                                                    provisioned):
    first = driver.login(**STANDARD)
    id_token = redeem(driver, first["code"])["id_token"]
    assert "code" in at_client(silent(driver, id_token_hint=id_token))
    expired = hint_for(opendid, provisioned["user"]["did"], exp=int(time.time()) - 86400)
    assert "code" in at_client(silent(driver, id_token_hint=expired))


def test_a_hint_of_another_user_gets_login_required(driver, opendid, provisioned):
    logged_in(driver)
    other = hint_for(opendid, provisioned["attester"]["did"])
    params = at_client(silent(driver, id_token_hint=other))
    assert (params["error"], params["state"]) == ("login_required", "silent")


def test_a_hint_of_another_user_then_a_wallet_login_as_someone_else_is_refused(
        driver, opendid, provisioned):
    """Without prompt=none the wallet is asked; the client named its user, and another logged
    in: login_required, and no code."""
    other = hint_for(opendid, provisioned["attester"]["did"])
    to_login_page(driver.authorize(**{**STANDARD, "id_token_hint": other}))
    driver.open_session()
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204
    params = result_params(done.headers["Location"])
    assert params["error"] == "login_required" and "code" not in params


def test_broken_hints_are_an_error_at_the_client(driver, opendid, provisioned):
    logged_in(driver)
    did = provisioned["user"]["did"]
    genuine = hint_for(opendid, did)
    head, body, signature = genuine.split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps(
        {**decode_jwt_claims(genuine), "sub": provisioned["attester"]["did"]}).encode()
    ).rstrip(b"=").decode()
    none_head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    opendid_style = opendid.services.tokens.id_token(
        opendid.services.clients.get("opendid-client"), Identity(did, None, {}, 0), "n")
    access = opendid.services.tokens.access_token(
        opendid.services.clients.get("standard-client"), Identity(did, None, {}, 0)).token
    broken = {
        "not a jwt": "abc",
        "three empty parts": "..",
        "forged sub": f"{head}.{forged_body}.{signature}",
        "alg none": f"{none_head}.{body}.",
        "signed with OpenDID's shared key": opendid_style,
        "an access token": access,
        "another issuer": hint_for(opendid, did, iss="https://elsewhere.example"),
        "issued to another client": hint_for(opendid, did, "es-client"),
        "audience not a string": hint_for(opendid, did, aud=5),
    }
    for name, hint in broken.items():
        params = at_client(silent(driver, id_token_hint=hint))
        assert (params["error"], params["state"]) == ("invalid_request", "silent"), name
    assert "code" in at_client(silent(driver, id_token_hint=genuine))  # still logged in


# -- the decision and the store, offline ---------------------------------------------------------


def make_request(**changes: Any) -> AuthRequest:
    base = AuthRequest("c", STANDARD_REDIRECT, "code", "openid", "s", "n", None, None)
    return AuthRequest(**{**base.__dict__, **changes})


def test_offline_decision_table(opendid, provisioned, tmp_path):
    store = SsoStore(Database(tmp_path / "sso.db"))
    reqs = requirement(provisioned, ["Email"])
    did = provisioned["user"]["did"]
    identity = Identity(did, "w3", {"Email": "e"}, int(time.time()), "0x" + "11" * 32,
                        provisioned["ctype"], provisioned["attester"]["did"])
    session = store.find(store.login(None, "c", requirements_fingerprint(reqs), identity, 60))
    assert session is not None
    standard = ClientRecord("c", SECRET, [STANDARD_REDIRECT], reqs, "RS256")
    opendid_style = ClientRecord("c", SECRET, [STANDARD_REDIRECT], reqs)
    sso = SingleSignOn(opendid.services.keyring, opendid.url, lambda i: True)
    assert isinstance(sso.decide(make_request(), standard, session), Reuse)
    assert sso.decide(make_request(), opendid_style, session) == ShowLogin()
    assert sso.decide(make_request(prompt=("none",)), standard, None) == Refuse(
        "login_required", "The user is not logged in")
    assert isinstance(sso.decide(make_request(max_age=10), standard, session,
                                 now=session.auth_time + 9), Reuse)
    assert isinstance(sso.decide(make_request(max_age=10), standard, session,
                                 now=session.auth_time + 10), ShowLogin)
    revoked = SingleSignOn(opendid.services.keyring, opendid.url, lambda i: False)
    assert revoked.decide(make_request(prompt=("none",)), standard, session) == Refuse(
        "login_required", "The credential of the login is no longer valid")


def test_another_did_on_the_same_browser_replaces_the_session(tmp_path):
    store = SsoStore(Database(tmp_path / "sso.db"))
    now = int(time.time())
    alice = Identity("did:kilt:4alice", None, {"Email": "a"}, now, "0x01", "0x02", "did:x")
    bob = Identity("did:kilt:4bob", None, {}, now)
    first = store.login(None, "a-client", "fp-a", alice, 60)
    second = store.login(first, "b-client", "fp-b", bob, 60)
    assert store.find(first) is None  # taken over
    session = store.find(second)
    assert session is not None and session.did == bob.did
    assert [s.client_id for s in session.satisfied] == ["b-client"]  # alice's credential gone
    third = store.login(second, "c-client", "fp-c", bob, 60)
    assert [s.client_id for s in store.find(third).satisfied] == ["b-client", "c-client"]


def test_expired_sessions_are_purged_by_the_housekeeper(opendid, tmp_path):
    store = SsoStore(Database(tmp_path / "sso.db"))
    old = Identity("did:kilt:4old", None, {}, int(time.time()) - 7200)
    live = store.login(None, "c", "fp", Identity("did:kilt:4new", None, {}, int(time.time())),
                       3600)
    store.login(None, "c", "fp", old, 3600)
    assert store.purge(10) == 1
    assert store.find(live) is not None
    steps = opendid.app.extensions["opendid-housekeeper"].steps
    assert opendid.services.sso.purge in steps


def test_discovery_lists_the_end_session_endpoint(opendid):
    doc = requests.get(opendid.url + "/.well-known/openid-configuration").json()
    assert doc["end_session_endpoint"] == opendid.url + "/api/v1/logout"

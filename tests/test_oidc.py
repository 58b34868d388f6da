"""Standard OpenID Connect on top of the OpenDID API: discovery, JWKS, PKCE, client auth,
refresh rotation, userinfo; ID tokens verified through JWKS as a relying party does."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwk, jwt

from conftest import OPENDID_REDIRECT, SECRET, STANDARD_REDIRECT, expire_code
from opendid.devtools.login_driver import LoginDriver, pkce_pair

STANDARD = {"client_id": "standard-client", "redirect_uri": STANDARD_REDIRECT,
            "response_type": "code", "scope": "openid", "state": "s1", "nonce": "n1"}


def discovery(opendid) -> dict:
    return requests.get(opendid.url + "/.well-known/openid-configuration").json()


def verify_with_jwks(opendid, token: str, alg: str) -> dict:
    jwks = requests.get(discovery(opendid)["jwks_uri"]).json()
    keys = jwk.KeySet.import_key_set(jwks)
    return dict(jwt.decode(token, keys, algorithms=[alg]).claims)


def redeem(driver, code, client_id="standard-client", verifier=None, auth="post", **extra):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": STANDARD_REDIRECT,
            **extra}
    if verifier:
        form["code_verifier"] = verifier
    headers = {}
    if auth == "post":
        form.update(client_id=client_id, client_secret=SECRET)
    elif auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{client_id}:{SECRET}".encode()).decode()
    else:
        form["client_id"] = client_id
    return requests.post(driver.url("/api/v1/token"), data=form, headers=headers)


def test_discovery_document(opendid):
    doc = discovery(opendid)
    assert doc["issuer"] == opendid.url
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert doc[key].startswith(opendid.url)
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["response_types_supported"]) == {"code", "id_token", "id_token token"}


def test_jwks_publishes_asymmetric_keys_with_kids(opendid):
    keys = requests.get(opendid.url + "/.well-known/jwks.json").json()["keys"]
    assert {k["alg"] for k in keys} >= {"RS256", "ES256", "EdDSA"}
    assert all(k["kid"] and "d" not in k for k in keys)


@pytest.mark.parametrize("client_id, alg", [("standard-client", "RS256"),
                                            ("es-client", "ES256"),
                                            ("eddsa-client", "EdDSA")])
def test_standard_code_flow_tokens_verify_through_jwks(driver, opendid, provisioned,
                                                       client_id, alg):
    verifier, challenge = pkce_pair()
    params = driver.login(**{**STANDARD, "client_id": client_id, "code_challenge": challenge,
                             "code_challenge_method": "S256"})
    assert params["state"] == "s1"
    response = redeem(driver, params["code"], client_id, verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    claims = verify_with_jwks(opendid, body["id_token"], alg)
    assert claims["iss"] == opendid.url
    assert claims["aud"] == client_id
    assert claims["sub"] == provisioned["user"]["did"]
    assert claims["nonce"] == "n1"
    assert claims["w3n"] == provisioned["user"]["web3name"]
    assert claims["pro"] == {"Email": "some@example.org"}
    assert abs(claims["auth_time"] - time.time()) < 120 and claims["exp"] > time.time()
    assert "at_hash" in claims


def test_standard_implicit_flow(driver, opendid, provisioned):
    params = driver.login(**{**STANDARD, "response_type": "id_token token"})
    assert set(params) == {"id_token", "access_token", "token_type", "expires_in", "state",
                           "iss"}
    claims = verify_with_jwks(opendid, params["id_token"], "RS256")
    assert claims["aud"] == "standard-client" and claims["nonce"] == "n1"
    from authlib.oidc.core.util import create_half_hash
    assert claims["at_hash"] == create_half_hash(params["access_token"], "RS256").decode()
    only_id = LoginDriver(driver.base_url, driver.wallet, driver.chain).login(
        **{**STANDARD, "response_type": "id_token"})
    # no refresh token in an implicit response
    assert set(only_id) == {"id_token", "state", "iss"}


def test_client_secret_basic(driver):
    params = driver.login(**STANDARD)
    assert redeem(driver, params["code"], auth="basic").status_code == 200


def test_pkce_is_required_for_public_clients(driver):
    response = driver.authorize(**{**STANDARD, "client_id": "public-client"})
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]
    response = driver.authorize(**{**STANDARD, "client_id": "public-client",
                                   "code_challenge": "abc", "code_challenge_method": "plain"})
    assert "error=invalid_request" in response.headers["Location"]


def test_public_client_with_pkce(driver, opendid):
    verifier, challenge = pkce_pair()
    params = driver.login(**{**STANDARD, "client_id": "public-client",
                             "code_challenge": challenge})
    wrong = redeem(driver, params["code"], "public-client", pkce_pair()[0], auth="none")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    missing = redeem(driver, params["code"], "public-client", None, auth="none")
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    right = redeem(driver, params["code"], "public-client", verifier, auth="none")
    assert right.status_code == 200, right.text
    verify_with_jwks(opendid, right.json()["id_token"], "RS256")


def test_public_client_cannot_use_a_secret_and_confidential_needs_one(driver):
    verifier, challenge = pkce_pair()
    params = driver.login(**{**STANDARD, "client_id": "public-client",
                             "code_challenge": challenge})
    response = redeem(driver, params["code"], "public-client", verifier, auth="post")
    assert response.status_code == 401
    params = driver.login(**STANDARD, prompt="login")  # the wallet again, not single sign-on
    response = redeem(driver, params["code"], auth="none")
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_verifier_without_challenge_is_rejected(driver):
    params = driver.login(**STANDARD)
    response = redeem(driver, params["code"], verifier=pkce_pair()[0])
    assert response.status_code == 400


def test_expired_code_is_rejected(driver, opendid):
    params = driver.login(**STANDARD)
    expire_code(opendid.services, params["code"])
    response = redeem(driver, params["code"])
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


def test_refresh_token_grant_rotates(driver):
    tokens = redeem(driver, driver.login(**STANDARD)["code"]).json()

    def refresh(token, client_id="standard-client"):
        return requests.post(driver.url("/api/v1/token"), data={
            "grant_type": "refresh_token", "refresh_token": token,
            "client_id": client_id, "client_secret": SECRET})

    # another client, with its own valid credentials, presenting a fresh, valid token
    other = refresh(tokens["refresh_token"], "es-client")
    assert (other.status_code, other.json()["error"]) == (400, "invalid_grant")
    first = refresh(tokens["refresh_token"])
    assert first.status_code == 200, first.text
    new = first.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert refresh(new["refresh_token"]).status_code == 200  # rotation chains
    again = refresh(tokens["refresh_token"])  # a reuse: revokes the grant (test_refresh.py)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_userinfo(driver, provisioned):
    tokens = redeem(driver, driver.login(**STANDARD)["code"]).json()
    response = requests.get(driver.url("/api/v1/userinfo"),
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200
    assert response.json()["sub"] == provisioned["user"]["did"]
    for header in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = requests.get(driver.url("/api/v1/userinfo"), headers=header)
        assert response.status_code == 401
        assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_code_reuse_revokes_standard_tokens_too(driver):
    code = driver.login(**STANDARD)["code"]
    tokens = redeem(driver, code).json()
    assert redeem(driver, code).status_code == 400
    response = requests.get(driver.url("/api/v1/userinfo"),
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 401
    refreshed = requests.post(driver.url("/api/v1/token"), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": "standard-client", "client_secret": SECRET})
    assert refreshed.status_code == 400


def test_keys_rotate_and_old_keys_stay_published(tmp_path, monkeypatch):
    from opendid.oidc.keys import KeyRing
    ring = KeyRing(tmp_path / "jwks.json", max_token_lifetime=3600)
    old = ring.signing_key("RS256").kid
    token = jwt.encode({"alg": "RS256", "kid": old}, {"sub": "x"}, ring.signing_key("RS256"))
    ring.rotate()
    assert ring.signing_key("RS256").kid != old
    kids = {k["kid"] for k in ring.public_jwks()["keys"]}
    assert old in kids
    jwt.decode(token, ring.verification_keys(), algorithms=["RS256"])
    assert KeyRing(tmp_path / "jwks.json", 3600).signing_key("RS256").kid == (
        ring.signing_key("RS256").kid)  # kept across restarts
    import opendid.oidc.keys as keys_module
    running = KeyRing(tmp_path / "jwks.json", 3600)  # another worker, started before a rotation
    before = running.signing_key("ES256").kid
    KeyRing(tmp_path / "jwks.json", 3600).rotate()
    monkeypatch.setattr(keys_module, "RELOAD_INTERVAL", 0)
    assert running.signing_key("ES256").kid != before
    # a negative lifetime: every retired key's tokens have expired, whatever the clock reads
    expired = KeyRing(tmp_path / "jwks.json", max_token_lifetime=-1)
    assert old not in {k["kid"] for k in expired.public_jwks()["keys"]}


# -- tokens a client can verify, discovery, per-client response types -------------------------


def test_public_client_without_an_alg_gets_tokens_a_relying_party_can_verify(driver, opendid,
                                                                            provisioned):
    """What a certified RP library does: discovery, JWKS, then iss/aud/exp/nonce checks."""
    from joserfc.jwt import JWTClaimsRegistry

    verifier, challenge = pkce_pair()
    params = driver.login(**{**STANDARD, "client_id": "bare-public-client",
                             "code_challenge": challenge})
    response = redeem(driver, params["code"], "bare-public-client", verifier, auth="none")
    assert response.status_code == 200, response.text
    doc = discovery(opendid)
    keys = jwk.KeySet.import_key_set(requests.get(doc["jwks_uri"]).json())
    token = jwt.decode(response.json()["id_token"], keys,
                       algorithms=doc["id_token_signing_alg_values_supported"])
    assert token.header["alg"] == "RS256" and token.header["kid"]
    JWTClaimsRegistry(iss={"essential": True, "value": doc["issuer"]},
                      aud={"essential": True, "value": "bare-public-client"},
                      sub={"essential": True, "value": provisioned["user"]["did"]},
                      nonce={"essential": True, "value": "n1"},
                      exp={"essential": True}).validate(token.claims)
    access = jwt.decode(response.json()["access_token"], keys, algorithms=["RS256"])
    assert access.claims["iss"] == doc["issuer"]


def test_discovery_lists_only_what_is_honoured(opendid):
    doc = discovery(opendid)
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
    assert opendid.services.config.jwt.algorithm == "HS256"  # the server-wide secret's: unlisted
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False
    assert doc["response_modes_supported"] == ["query", "fragment", "form_post"]


def _authorize_error(driver, redirect: str, **params: str) -> tuple[str, dict[str, list[str]]]:
    response = driver.authorize(**params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(redirect)
    assert "opendid=" not in response.headers.get("Set-Cookie", "")  # no login was started
    parts = urlsplit(location)
    where = "fragment" if parts.fragment else "query"
    return where, parse_qs(parts.fragment or parts.query)


@pytest.mark.parametrize("client_id, redirect, response_type, where", [
    ("es-client", STANDARD_REDIRECT, "id_token", "fragment"),  # standard: code only by default
    ("es-client", STANDARD_REDIRECT, "id_token token", "fragment"),
    ("public-client", STANDARD_REDIRECT, "id_token", "fragment"),
    ("code-only-client", OPENDID_REDIRECT, "id_token", "query"),  # responseTypes: [code]
    ("code-only-client", OPENDID_REDIRECT, "id_token token", "query"),
])
def test_implicit_flow_is_refused_for_a_code_only_client(driver, client_id, redirect,
                                                         response_type, where):
    got, params = _authorize_error(driver, redirect, client_id=client_id, redirect_uri=redirect,
                                   response_type=response_type, scope="openid", state="st",
                                   nonce="n")
    assert got == where
    assert params["error"] == ["unauthorized_client"] and params["state"] == ["st"]
    assert not {"id_token", "access_token", "code"} & set(params)


def test_a_code_only_client_still_logs_in_with_the_code_flow(driver):
    params = driver.login(client_id="code-only-client", redirect_uri=OPENDID_REDIRECT,
                          response_type="code", scope="openid", state="st")
    assert params["state"] == "st" and params["code"]


def test_response_mode_fragment_is_honoured_for_the_code_flow(driver):
    verifier, challenge = pkce_pair()
    started = driver.authorize(**STANDARD, code_challenge=challenge, response_mode="fragment")
    assert started.status_code == 302 and started.headers["Location"] == "/"
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204
    parts = urlsplit(done.headers["Location"])
    assert parts.query == "" and parts.fragment
    code = parse_qs(parts.fragment)["code"][0]
    assert redeem(driver, code, verifier=verifier).status_code == 200


@pytest.mark.parametrize("extra, error", [
    ({"response_type": "id_token", "response_mode": "query"}, "invalid_request"),
    ({"response_type": "id_token token", "response_mode": "query"}, "invalid_request"),
    ({"response_mode": "form_post.jwt"}, "invalid_request"),  # JARM: not supported
    ({"response_mode": "QUERY"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://evil.example.org/request.jwt"}, "request_uri_not_supported"),
])
def test_what_is_not_honoured_is_refused(driver, extra, error):
    _, params = _authorize_error(driver, STANDARD_REDIRECT, **{**STANDARD, **extra})
    assert params["error"] == [error] and params["state"] == ["s1"]


@pytest.mark.parametrize("types, message", [([], "at least one"), (["token"], "responseTypes"),
                                            (["code", "code"], "once")])
def test_response_types_config_key_is_checked(tmp_path, types, message):
    import yaml

    from opendid.config import ConfigError, load_config
    from opendid.devtools.devchain import PROJECT_ROOT
    data = yaml.safe_load((PROJECT_ROOT.parent / "shared" / "docs" /
                           "config-sample.yaml").read_text())
    data["clients"]["example-client"]["responseTypes"] = types
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_client_store_adds_its_new_columns_to_an_existing_database(tmp_path):
    """A database made before `responseTypes`, `one_time.owner` and `tokens.issued_at` existed
    keeps working, with the defaults."""
    import sqlite3

    from opendid.store.clients import ClientStore
    from opendid.store.db import Database
    from opendid.store.grants import GrantStore
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE clients (client_id TEXT PRIMARY KEY, client_secret TEXT, "
                "redirect_urls TEXT NOT NULL, requirements TEXT NOT NULL, id_token_alg TEXT, "
                "source TEXT NOT NULL)")
    old.execute("INSERT INTO clients VALUES ('old', 's', ?, '[]', 'RS256', 'cli')",
                ('["https://x/cb"]',))
    old.execute("CREATE TABLE one_time (kind TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (kind, key))")
    old.execute("CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                "grant_id TEXT NOT NULL, client_id TEXT NOT NULL, data TEXT NOT NULL, "
                "expires_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)")
    old.commit()
    old.close()
    db = Database(path)
    client = ClientStore(db).get("old")
    assert client is not None and client.allowed_response_types == ("code",)
    assert client.refresh_needs_client_auth
    GrantStore(db)
    columns = {table: {row[1] for row in db.connect().execute(f"PRAGMA table_info({table})")}
               for table in ("one_time", "tokens")}
    assert "owner" in columns["one_time"] and "issued_at" in columns["tokens"]


def test_racing_code_redemptions_one_wins_and_the_reuse_revokes_its_tokens(driver):
    """The code is marked used and its tokens saved in one transaction, so the second use
    always finds the winner's tokens to revoke (RFC 6749 §4.1.2), and the winner still gets
    its 200."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    code = driver.login(**STANDARD)["code"]
    start = Barrier(6)

    def present(_: int) -> requests.Response:
        start.wait(timeout=30)
        return redeem(driver, code)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(present, range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400, 400], statuses
    winner = next(r for r in responses if r.status_code == 200).json()
    response = requests.get(driver.url("/api/v1/userinfo"),
                            headers={"Authorization": f"Bearer {winner['access_token']}"})
    assert response.status_code == 401

"""Standard claims (issue 7 §4) end to end: real logins with the dev wallet's credentials against
a provider whose clients carry claim maps, ID tokens verified through JWKS, userinfo over HTTP.

Pins: a scope yields its claims and only its claims; a per-client claim map beats the default;
`email_verified` is true only for an attester the client trusts by name; `preferred_username`
is the web3name; the claims go into the ID token only when no access token is issued; the
credential claim names the presented credential; OpenDID-style ID tokens stay as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from joserfc import jwk, jwt

from conftest import (
    OPENDID_REDIRECT,
    SECRET,
    STANDARD_REDIRECT,
    bind_server,
    serve_apps,
    write_test_config,
)
from demo_rp.attestation import AttestationCheck, check_attestation
from opendid.application import create_app
from opendid.config import ConfigError, load_config
from opendid.devtools.login_driver import (
    LoginDriver,
    decode_jwt_claims,
    pkce_pair,
    result_params,
)
from opendid.devtools.wallet import HeldCredential, Wallet
from opendid.kilt.chain import ChainClient
from opendid.oidc.claims import CREDENTIAL_CLAIM

RP_UNUSED = "http://127.0.0.1:9/cb"  # the shared rp-client's redirect, unused here
TRUSTED, UNTRUSTED = "Email (trusted attester)", "Email (untrusted attester)"


def requirement(provisioned: dict[str, Any], trusted: bool = True) -> list[dict[str, Any]]:
    return [{"cTypeHash": provisioned["ctype"],
             "trustedAttesters": [provisioned["attester"]["did"]] if trusted else [],
             "requiredProperties": ["Email"]}]


def claims_clients(provisioned: dict[str, Any]) -> dict[str, Any]:
    standard = {"redirectUrls": [STANDARD_REDIRECT], "clientSecret": SECRET,
                "idTokenSignedResponseAlg": "RS256",
                "responseTypes": ["code", "id_token", "id_token token"]}
    return {
        # the default claim map (email: Email)
        "std": {**standard, "requirements": requirement(provisioned)},
        # its own map: the Email property is also its nickname; `name` from an undisclosed one
        "mapped": {**standard, "requirements": requirement(provisioned),
                   "claimMap": {"email": "Email", "nickname": "Email", "name": "FullName"}},
        # an empty map: no credential property becomes a standard claim
        "unmapped": {**standard, "requirements": requirement(provisioned), "claimMap": {}},
        # any attester accepted: nobody the client named vouched for the address
        "any-attester": {**standard, "requirements": requirement(provisioned, trusted=False)},
        # trusts the attester, but for another CType; the email's CType: any attester
        "other-ctype": {**standard, "requirements": [
            *requirement(provisioned, trusted=False),
            {"cTypeHash": "0x" + "ab" * 32, "trustedAttesters": [provisioned["attester"]["did"]]},
        ]},
        # DID-only login for a standard client
        "did-std": {**standard},
        # removed while its tokens live (test_userinfo_refuses_tokens_of_a_removed_client)
        "doomed": {**standard, "requirements": requirement(provisioned)},
        # OpenDID-style: the original's tokens
        "opendid": {"redirectUrls": [OPENDID_REDIRECT], "clientSecret": SECRET,
                    "requirements": requirement(provisioned)},
    }


@pytest.fixture(scope="module")
def claims_server(provisioned: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    folder = tmp_path_factory.mktemp("claims")
    path = write_test_config(provisioned, folder / "config.yaml", url, [RP_UNUSED])
    data = yaml.safe_load(path.read_text())
    data["clients"].update(claims_clients(provisioned))
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    app = create_app(path, instance_path=folder / "instance")
    server.app = app
    with serve_apps(server):
        yield url, app
    app.extensions["opendid"].chain.close()


@pytest.fixture(scope="module")
def claims_url(claims_server: tuple[str, Any]) -> str:
    return claims_server[0]


@pytest.fixture()
def login(claims_url: str, wallet: Wallet, chain: ChainClient) -> Iterator[LoginDriver]:
    driver = LoginDriver(claims_url, wallet, chain)
    yield driver
    driver.http.close()


def held(wallet: Wallet, label: str) -> HeldCredential:
    return next(c for c in wallet.credentials if c.label == label)


def credential_login(driver: LoginDriver, credential: str = TRUSTED,
                     **params: str) -> dict[str, str]:
    """A login presenting the named credential (always with the wallet: `prompt=login`, so a
    single sign-on session from an earlier test does not answer); what the client receives."""
    started = driver.authorize(**{"prompt": "login", **params})
    assert started.status_code == 302, started.text
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit(held(driver.wallet, credential))
    assert done.status_code == 204, done.text
    return result_params(done.headers["Location"])


def verified(url: str, token: str) -> dict[str, Any]:
    keys = jwk.KeySet.import_key_set(requests.get(url + "/.well-known/jwks.json").json())
    return dict(jwt.decode(token, keys, algorithms=["RS256"]).claims)


def implicit(driver: LoginDriver, client: str, scope: str, response_type: str = "id_token",
             credential: str = TRUSTED) -> dict[str, str]:
    return credential_login(driver, credential, client_id=client, redirect_uri=STANDARD_REDIRECT,
                            response_type=response_type, scope=scope, state="s", nonce="n")


def code_tokens(driver: LoginDriver, client: str, scope: str,
                credential: str = TRUSTED) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = credential_login(driver, credential, client_id=client, redirect_uri=STANDARD_REDIRECT,
                            response_type="code", scope=scope, state="s", nonce="n",
                            code_challenge=challenge)["code"]
    response = requests.post(driver.url("/api/v1/token"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": STANDARD_REDIRECT,
        "client_id": client, "client_secret": SECRET, "code_verifier": verifier}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def userinfo(driver: LoginDriver, access_token: str) -> dict[str, Any]:
    response = requests.get(driver.url("/api/v1/userinfo"), timeout=30,
                            headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.text
    return response.json()


STANDARD = {"email", "email_verified", "preferred_username", "name", "nickname", "given_name",
            "family_name"}


def standard_part(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k in STANDARD}


# -- the implicit id_token carries the claims ----------------------------------------------------


def test_implicit_id_token_carries_the_granted_scopes_claims(login, claims_url, provisioned):
    claims = verified(claims_url, implicit(login, "std", "openid email profile")["id_token"])
    assert standard_part(claims) == {"email": "some@example.org", "email_verified": True,
                                     "preferred_username": provisioned["user"]["web3name"]}


@pytest.mark.parametrize("scope, expected", [
    ("openid", set()),
    ("openid email", {"email", "email_verified"}),
    ("openid profile", {"preferred_username"}),
    # other spellings of a scope are other scopes (RFC 6749 §3.3: case-sensitive, space-separated)
    ("openid EMAIL Profile", set()),
    ("openid\temail", set()),
    ("openid email+profile", set()),
    ("openid emailprofile", set()),
])
def test_a_scope_not_granted_yields_none_of_its_claims(login, claims_url, scope, expected):
    claims = verified(claims_url, implicit(login, "std", scope)["id_token"])
    assert set(standard_part(claims)) == expected
    assert claims["pro"] == {"Email": "some@example.org"}  # OpenDID's claim stays


def test_no_standard_claims_in_the_id_token_when_an_access_token_is_issued(login, claims_url):
    """OIDC Core §5.4: with an access token, the scopes' claims come from userinfo."""
    result = implicit(login, "std", "openid email profile", "id_token token")
    assert standard_part(verified(claims_url, result["id_token"])) == {}
    assert set(standard_part(userinfo(login, result["access_token"]))) == {
        "email", "email_verified", "preferred_username"}


def test_code_flow_id_token_has_no_scope_claims_and_userinfo_has_them(login, claims_url,
                                                                      provisioned):
    tokens = code_tokens(login, "std", "openid email profile")
    assert standard_part(verified(claims_url, tokens["id_token"])) == {}
    info = userinfo(login, tokens["access_token"])
    assert standard_part(info) == {"email": "some@example.org", "email_verified": True,
                                   "preferred_username": provisioned["user"]["web3name"]}
    assert info["sub"] == provisioned["user"]["did"]


def test_userinfo_claims_follow_the_tokens_scope(login):
    info = userinfo(login, code_tokens(login, "std", "openid profile")["access_token"])
    assert set(standard_part(info)) == {"preferred_username"}
    info = userinfo(login, code_tokens(login, "std", "openid")["access_token"])
    assert standard_part(info) == {}


# -- claim maps --------------------------------------------------------------------------------


def test_a_clients_own_claim_map_replaces_the_default(login, claims_url):
    claims = verified(claims_url, implicit(login, "mapped", "openid email profile")["id_token"])
    # nickname from Email; name left out: the credential has no FullName property
    assert claims["nickname"] == claims["email"] == "some@example.org"
    assert "name" not in claims
    claims = verified(claims_url, implicit(login, "unmapped", "openid email profile")["id_token"])
    assert set(standard_part(claims)) == {"preferred_username"}


def test_mapped_claims_need_their_own_scope(login, claims_url):
    """`nickname` is a profile claim even though it comes from the Email property."""
    claims = verified(claims_url, implicit(login, "mapped", "openid email")["id_token"])
    assert set(standard_part(claims)) == {"email", "email_verified"}


# -- email_verified ----------------------------------------------------------------------------


def test_email_not_verified_when_the_client_trusts_any_attester(login, claims_url):
    """Both the trusted and the untrusted attester's credential are accepted by a client with
    an empty trustedAttesters list; neither address is vouched for by someone it named."""
    for credential, address in ((TRUSTED, "some@example.org"),
                                (UNTRUSTED, "untrusted@example.org")):
        result = implicit(login, "any-attester", "openid email", credential=credential)
        claims = verified(claims_url, result["id_token"])
        assert (claims["email"], claims["email_verified"]) == (address, False), credential


def test_email_not_verified_when_the_attester_is_trusted_for_another_ctype(login, claims_url):
    claims = verified(claims_url, implicit(login, "other-ctype", "openid email")["id_token"])
    assert (claims["email"], claims["email_verified"]) == ("some@example.org", False)


# -- the credential claim ----------------------------------------------------------------------


def test_id_token_names_the_presented_credential(login, claims_url, provisioned):
    trusted = provisioned["credentials"]["trusted"]
    expected = {"rootHash": trusted["rootHash"], "cTypeHash": provisioned["ctype"],
                "attester": provisioned["attester"]["did"]}
    for claims in (verified(claims_url, implicit(login, "std", "openid")["id_token"]),
                   verified(claims_url, code_tokens(login, "std", "openid")["id_token"])):
        assert claims[CREDENTIAL_CLAIM] == expected
    untrusted = verified(claims_url, implicit(login, "any-attester", "openid",
                                              credential=UNTRUSTED)["id_token"])
    assert untrusted[CREDENTIAL_CLAIM] == {
        "rootHash": provisioned["credentials"]["untrusted"]["rootHash"],
        "cTypeHash": provisioned["ctype"], "attester": provisioned["untrustedAttester"]["did"]}


def test_did_only_login_has_a_username_but_no_credential_or_email(login, claims_url,
                                                                  provisioned):
    started = login.authorize(client_id="did-std", redirect_uri=STANDARD_REDIRECT,
                              response_type="id_token", scope="openid email profile",
                              state="s", nonce="n-did")
    assert started.status_code == 302, started.text
    done = login.did_login(login.did_token("n-did"))
    assert done.status_code == 204, done.text
    claims = verified(claims_url, result_params(done.headers["Location"])["id_token"])
    assert standard_part(claims) == {"preferred_username": provisioned["user"]["web3name"]}
    assert CREDENTIAL_CLAIM not in claims


# -- OpenDID-style clients ---------------------------------------------------------------------


def test_opendid_style_id_token_keeps_the_originals_claims(login, provisioned):
    result = credential_login(login, client_id="opendid", redirect_uri=OPENDID_REDIRECT,
                              response_type="id_token", scope="openid email profile",
                              state="s", nonce="n")
    claims = decode_jwt_claims(result["id_token"])
    assert set(claims) == {"iss", "sub", "iat", "exp", "w3n", "pro", "nonce", "aud"}
    assert claims["w3n"] == provisioned["user"]["web3name"]


def test_opendid_style_clients_get_the_scopes_claims_at_userinfo(login, provisioned):
    """Userinfo is this project's addition, not OpenDID's contract: the standard claims come
    by scope there, beside `w3n` and `pro`."""
    verifier, challenge = pkce_pair()
    code = credential_login(login, client_id="opendid", redirect_uri=OPENDID_REDIRECT,
                            response_type="code", scope="openid email", state="s",
                            code_challenge=challenge)["code"]
    response = requests.post(login.url("/api/v1/token"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OPENDID_REDIRECT,
        "client_id": "opendid", "client_secret": SECRET, "code_verifier": verifier}, timeout=30)
    info = userinfo(login, response.json()["access_token"])
    assert info == {"sub": provisioned["user"]["did"], "w3n": provisioned["user"]["web3name"],
                    "pro": {"Email": "some@example.org"}, "email": "some@example.org",
                    "email_verified": True}


def test_userinfo_refuses_tokens_of_a_removed_client(login, claims_server):
    """Its claim map and requirements went with it: nothing left to answer by."""
    access = code_tokens(login, "doomed", "openid email")["access_token"]
    assert userinfo(login, access)["email"] == "some@example.org"
    assert claims_server[1].extensions["opendid"].clients.delete("doomed")
    response = requests.get(login.url("/api/v1/userinfo"), timeout=30,
                            headers={"Authorization": f"Bearer {access}"})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


# -- configuration -----------------------------------------------------------------------------


def _config_with(provisioned: dict[str, Any], tmp_path: Path, **changes: Any) -> Path:
    path = write_test_config(provisioned, tmp_path / "config.yaml", "https://op.example",
                             [RP_UNUSED])
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if key == "client":
            data["clients"]["std"] = {**claims_clients(provisioned)["std"], "claimMap": value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_default_claim_map_is_email_from_the_email_property(provisioned, tmp_path):
    config = load_config(_config_with(provisioned, tmp_path))
    assert config.claimMap == {"email": "Email"}
    config = load_config(_config_with(provisioned, tmp_path, claimMap={"name": "Name"}))
    assert config.claimMap == {"name": "Name"}


@pytest.mark.parametrize("where, value, message", [
    ("claimMap", {"sub": "Email"}, "key 'claimMap': Value error, 'sub' is not a standard claim"),
    ("claimMap", {"email_verified": "Email"}, "'email_verified' is not a standard claim"),
    ("claimMap", {"email": ""}, "'email': name the credential property"),
    ("claimMap", {"email": 5}, "key 'claimMap.email'"),
    ("claimMap", ["email"], "key 'claimMap'"),
    ("client", {"preferred_username": "Email"}, "key 'clients.std.claimMap': Value error, "
                                                "'preferred_username' is not a standard claim"),
])
def test_a_bad_claim_map_is_a_config_error_naming_the_key(provisioned, tmp_path, where, value,
                                                           message):
    path = _config_with(provisioned, tmp_path, **{where: value})
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert message in str(raised.value)


def test_discovery_lists_the_scopes_and_claims(claims_url):
    doc = requests.get(claims_url + "/.well-known/openid-configuration", timeout=30).json()
    assert doc["scopes_supported"] == ["openid", "email", "profile"]
    assert STANDARD | {CREDENTIAL_CLAIM, "sub", "w3n", "pro"} <= set(doc["claims_supported"])


# -- the demo relying party --------------------------------------------------------------------


def through_demo_rp(driver: LoginDriver, rp_url: str, path: str) -> str:
    """Log in through the demo app (its authlib client starts the request); where it sends the
    browser back to."""
    page = driver.http.get(rp_url + path, timeout=30)
    assert page.status_code == 200 and "Log in with your KILT identity" in page.text
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204, done.text
    return str(done.headers["Location"])


def shown_claims(page: str, provisioned: dict[str, Any]) -> None:
    trusted = provisioned["credentials"]["trusted"]
    for expected in ('id="claim-email">some@example.org<',
                     'id="claim-email_verified">true<',
                     f'id="claim-preferred_username">{provisioned["user"]["web3name"]}<',
                     f'id="root-hash">{trusted["rootHash"]}',
                     f'id="ctype-hash">{provisioned["ctype"]}',
                     f'id="attester">{provisioned["attester"]["did"]}',
                     'id="attestation" class="valid">valid: attested by '):
        assert expected in page, expected


def test_demo_rp_asks_for_email_and_profile(driver, opendid):
    response = driver.http.get(opendid.rp_url + "/login/code", allow_redirects=False, timeout=30)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["scope"] == ["openid email profile"]


def test_demo_rp_code_flow_shows_the_claims_from_userinfo(driver, opendid, provisioned):
    location = through_demo_rp(driver, opendid.rp_url, "/login/code")
    page = driver.http.get(location, timeout=30)
    assert page.status_code == 200, page.text
    shown_claims(page.text, provisioned)


def test_demo_rp_implicit_flow_shows_the_claims_from_the_id_token(driver, opendid, provisioned):
    location = through_demo_rp(driver, opendid.rp_url, "/login/implicit")
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
    page = driver.http.post(opendid.rp_url + "/callback/implicit", data=fragment, timeout=30)
    assert page.status_code == 200, page.text
    shown_claims(page.text, provisioned)


def test_a_back_end_checks_the_credential_claim_on_chain(chain, provisioned):
    """The demo's check, against the dev chain's real attestations."""
    trusted, revoked = (provisioned["credentials"][k] for k in ("trusted", "revoked"))
    claim = {"rootHash": trusted["rootHash"], "cTypeHash": provisioned["ctype"],
             "attester": provisioned["attester"]["did"]}
    assert check_attestation(chain, claim).valid
    cases = [
        ({**claim, "rootHash": revoked["rootHash"]}, "the attestation has been revoked"),
        ({**claim, "rootHash": "0x" + "ab" * 32}, "no attestation on chain"),
        ({**claim, "cTypeHash": "0x" + "cd" * 32}, "attested for another CType"),
        ({**claim, "attester": provisioned["untrustedAttester"]["did"]},
         "attested by another DID"),
        ({**claim, "rootHash": trusted["rootHash"].upper()},
         "the credential claim has no valid root hash"),
        ({"cTypeHash": provisioned["ctype"]}, "the credential claim has no valid root hash"),
    ]
    for changed, message in cases:
        assert check_attestation(chain, changed) == AttestationCheck(False, message), message

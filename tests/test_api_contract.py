"""OpenDID's /api/v1 contract, row by row, over real HTTP against the dev chain."""

from __future__ import annotations

import copy
import os
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwk, jwt

from conftest import OPENDID_REDIRECT, SECRET
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims, result_params
from opendid.kilt.crypto import box_encrypt, verify_signature
from opendid.kilt.encoding import from_hex, to_hex

DOES_NOT_MATCH = (401, "Invalid challenge: Challenge doesn't match")
CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "st4te", "nonce": "n0nce"}


def implicit(**extra: str) -> dict[str, str]:
    return {**CODE, "response_type": "id_token", **extra}


# -- 1. authorize --

def test_authorize_redirects_to_the_login_page_and_sets_the_session_cookie(driver):
    response = driver.authorize(**CODE)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("opendid=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.content == b""


def test_every_login_gets_a_fresh_session_id(driver):
    first = driver.authorize(**CODE).cookies["opendid"]
    second = driver.authorize(**CODE).cookies["opendid"]
    assert first != second


def test_did_only_client_goes_to_the_page_with_the_nonce(driver):
    response = driver.authorize(**{**CODE, "client_id": "did-client"})
    assert response.headers["Location"] == "/?nonce=n0nce"


@pytest.mark.parametrize("change, message", [
    ({"client_id": "nobody"}, "Invalid client_id"),
    ({"client_id": ""}, "Invalid client_id"),
    ({"redirect_uri": "https://evil.example.org/cb"}, "Invalid redirect_uri"),
    ({"redirect_uri": ""}, "Invalid redirect_uri"),
    ({"redirect_uri": "not a uri"}, "Invalid redirect_uri"),
])
def test_unknown_client_or_redirect_uri_is_never_redirected_to(driver, change, message):
    response = driver.authorize(**{**CODE, **change})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert message in response.text
    assert "opendid=" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("change, error, description", [
    ({"response_type": ""}, "invalid_request", "Invalid response_type"),
    ({"response_type": "token"}, "unsupported_response_type", "Invalid response_type"),
    ({"response_type": "id_token", "nonce": ""}, "invalid_request", "Invalid nonce"),
])
def test_bad_requests_of_a_known_client_redirect_with_an_error(driver, change, error,
                                                               description):
    response = driver.authorize(**{**CODE, **change})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(OPENDID_REDIRECT + "?")
    params = parse_qs(urlsplit(location).query)
    assert params == {"error": [error], "error_description": [description], "state": ["st4te"]}


def test_standard_client_implicit_errors_go_in_the_fragment(driver):
    from conftest import STANDARD_REDIRECT
    response = driver.authorize(client_id="standard-client", redirect_uri=STANDARD_REDIRECT,
                                response_type="id_token", state="s")
    assert response.headers["Location"].startswith(STANDARD_REDIRECT + "#error=invalid_request")


# -- 2/3. challenge --

def test_challenge_shape(driver, opendid):
    driver.authorize(**CODE)
    data = driver.http.get(driver.url("/api/v1/challenge")).json()
    assert data["dAppName"] == "OpenDID"
    assert data["dAppEncryptionKeyUri"] == opendid.services.config.session.keyUri
    assert len(from_hex(data["challenge"])) == 32


def test_challenge_response_accepted_once(driver):
    driver.authorize(**CODE)
    response = driver.open_session()
    assert (response.status_code, response.text) == (200, "Challenge accepted")
    replay = driver.http.post(driver.url("/api/v1/challenge"),
                              json=driver.wallet_session.challenge_response)
    assert (replay.status_code, replay.text) == DOES_NOT_MATCH


def _wallet_answer(driver, plaintext: bytes) -> dict[str, str]:
    data = driver.http.get(driver.url("/api/v1/challenge")).json()
    session = driver.wallet.start_session(data["dAppEncryptionKeyUri"], data["challenge"],
                                          driver.chain)
    server_key = session.dapp_public_key
    ciphertext, nonce = box_encrypt(plaintext, session.secret, server_key)
    return {**session.challenge_response, "encryptedChallenge": to_hex(ciphertext),
            "nonce": to_hex(nonce)}


def test_wrong_challenge_does_not_match(driver):
    driver.authorize(**CODE)
    body = _wallet_answer(driver, os.urandom(32))
    response = driver.http.post(driver.url("/api/v1/challenge"), json=body)
    assert (response.status_code, response.text) == DOES_NOT_MATCH


@pytest.mark.parametrize("mutate", [
    lambda b: b.update(encryptedChallenge="0x" + "00" * 48),
    lambda b: b.update(nonce="0x1234"),
    lambda b: b.update(encryptedChallenge="nothex"),
])
def test_undecryptable_challenge(driver, mutate):
    driver.authorize(**CODE)
    body = _wallet_answer(driver, b"x" * 32)
    mutate(body)
    response = driver.http.post(driver.url("/api/v1/challenge"), json=body)
    assert (response.status_code, response.text) == (401, "Invalid challenge: Unable to decrypt")


@pytest.mark.parametrize("uri", [
    "did:kilt:light:004oS9dTxwbB24TH9Fnm2oBZQ4ziGMA1rMf2K95CpQWk2ydKB1",  # no key agreement
    "did:kilt:light:004oS9dTxwbB24TH9Fnm2oBZQ4ziGMA1rMf2K95CpQWk2ydKB1:z0OIl",
    "did:kilt:4oS9dTxwbB24TH9Fnm2oBZQ4ziGMA1rMf2K95CpQWk2ydKB1", None, 7,
])
def test_invalid_light_did(driver, uri):
    driver.authorize(**CODE)
    body = _wallet_answer(driver, b"x" * 32)
    body["encryptionKeyUri"] = uri
    response = driver.http.post(driver.url("/api/v1/challenge"), json=body)
    assert response.status_code == 400
    assert response.text.startswith("Invalid light DID: ")


def test_steps_without_a_session(opendid):
    fresh = requests.Session()
    for method, path in [("GET", "/api/v1/challenge"), ("POST", "/api/v1/challenge"),
                         ("GET", "/api/v1/credentials"), ("POST", "/api/v1/credentials"),
                         ("POST", "/api/v1/did/a.b.c")]:
        response = fresh.request(method, opendid.url + path, json={})
        assert (response.status_code, response.text) == (401, "Failed to get session"), path


# -- 4/5. credentials --

def test_credentials_before_the_wallet_session_is_refused(driver):
    driver.authorize(**CODE)
    response = driver.http.get(driver.url("/api/v1/credentials"))
    assert (response.status_code, response.text) == (401, "Failed to get session")


def test_request_credential_message(driver, opendid, provisioned):
    driver.authorize(**CODE)
    driver.open_session()
    envelope = driver.http.get(driver.url("/api/v1/credentials")).json()
    assert set(envelope) == {"ciphertext", "nonce", "senderKeyUri", "receiverKeyUri"}
    assert envelope["senderKeyUri"] == opendid.services.config.session.keyUri
    assert envelope["receiverKeyUri"] == driver.wallet_session.challenge_response[
        "encryptionKeyUri"]
    requirements, challenge = driver.wallet.read_request(driver.wallet_session, envelope)
    assert requirements[0].cTypeHash == provisioned["ctype"]
    assert requirements[0].trustedAttesters == [provisioned["attester"]["did"]]
    assert len(from_hex(challenge)) == 24


def _ready(driver: LoginDriver, params=CODE) -> None:
    driver.authorize(**params)
    assert driver.open_session().status_code == 200
    driver.fetch_request()


def _held(driver, label):
    return next(c for c in driver.wallet.credentials if c.label == label)


def test_code_flow_end_to_end(driver, provisioned):
    params = driver.login(**CODE)
    assert params["state"] == "st4te" and len(params["code"]) >= 32
    response = driver.token(grant_type="authorization_code", code=params["code"],
                            redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                            client_secret=SECRET)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert {"access_token", "token_type", "refresh_token", "id_token"} <= set(body)
    assert body["token_type"] == "bearer"
    claims = jwt.decode(body["id_token"], jwk.OctKey.import_key(
        opendid_jwt_secret(provisioned))).claims
    assert claims["sub"] == provisioned["user"]["did"]
    assert claims["w3n"] == provisioned["user"]["web3name"]
    assert claims["pro"] == {"Email": "some@example.org"}
    assert claims["nonce"] == "n0nce"
    assert claims["iss"] == provisioned["service"]["did"]


def opendid_jwt_secret(provisioned) -> str:
    from pathlib import Path

    import yaml
    return yaml.safe_load(Path(provisioned["config"]).read_text())["jwt"]["secretKey"]


def test_implicit_flow_fragment_as_the_original(driver, provisioned):
    params = driver.login(**implicit())
    assert set(params) == {"id_token", "refresh_token", "state", "token_type"}
    assert params["token_type"] == "bearer" and params["state"] == "st4te"
    claims = jwt.decode(params["id_token"], jwk.OctKey.import_key(
        opendid_jwt_secret(provisioned))).claims
    assert claims["sub"] == provisioned["user"]["did"] and claims["nonce"] == "n0nce"
    both = LoginDriver(driver.base_url, driver.wallet, driver.chain).login(
        **implicit(response_type="id_token token"))
    assert {"access_token", "id_token", "refresh_token"} <= set(both)


def test_garbage_submission_fails_to_decrypt(driver):
    _ready(driver)
    for body in ({"ciphertext": "0x00", "nonce": "0x" + "00" * 24,
                  "senderKeyUri": driver.wallet.keys.key_agreement_key_uri.uri,
                  "receiverKeyUri": "x"},
                 {"ciphertext": "0x00"}, "nope", None,
                 {"ciphertext": "0x00", "nonce": "0x" + "00" * 24,
                  "senderKeyUri": driver.wallet.did + "#0x" + "11" * 32, "receiverKeyUri": "x"}):
        response = driver.post_credentials(body)
        assert (response.status_code, response.text) == (400, "Failed to decrypt")


@pytest.mark.parametrize("mutate", [
    lambda m: m.update(sender=None),
    lambda m: m.update(messageId=5),
    lambda m: m["body"]["content"][0].pop("claimerSignature"),
    lambda m: m["body"].update(type="request-credential"),
])
def test_wrong_message_shape_fails_to_parse(driver, mutate):
    _ready(driver)
    from opendid.kilt.credentials import make_presentation
    from opendid.kilt.messages import seal
    held = _held(driver, "Email (trusted attester)")
    keys = driver.wallet.keys
    message = {"body": {"type": "submit-credential", "content": [make_presentation(
        held.credential, keys.authentication_key_uri.uri, keys.authentication.sign,
        driver.credential_challenge)]}, "sender": driver.wallet.did, "receiver": "x",
        "messageId": "m1", "createdAt": 0}
    mutate(message)
    session = driver.wallet_session
    envelope = seal(message, keys.key_agreement_key_uri.uri, session.dapp_key_uri,
                    keys.key_agreement_secret, session.dapp_public_key)
    response = driver.post_credentials(envelope)
    assert (response.status_code, response.text) == (400, "Failed to parse message")


@pytest.mark.parametrize("label, expected", [
    ("Email (revoked)", "revoked"),
    ("Email (untrusted attester)", "not trusted"),
])
def test_revoked_or_untrusted_credentials_fail(driver, label, expected):
    _ready(driver)
    response = driver.submit(_held(driver, label))
    assert response.status_code == 400
    assert response.text.startswith("Failed to verify credential: ")
    assert expected in response.text


def test_tampered_credential_fails(driver):
    _ready(driver)

    def tamper(p):
        p["claim"]["contents"]["Email"] = "mallory@example.org"
    response = driver.submit(_held(driver, "Email (trusted attester)"), tamper=tamper)
    assert response.status_code == 400
    assert response.text.startswith("Failed to verify credential: ")


def test_missing_required_property_fails(driver):
    _ready(driver, {**CODE, "client_id": "strict-client"})
    response = driver.submit(_held(driver, "Email (trusted attester)"))
    assert response.status_code == 400
    assert "Phone" in response.text


def test_sender_naming_another_did_is_rejected(driver, provisioned):
    _ready(driver)
    response = driver.submit(_held(driver, "Email (trusted attester)"),
                             sender=provisioned["attester"]["did"])
    assert response.status_code == 400
    assert "sender" in response.text


def test_placeholder_sender_is_ignored(driver):
    _ready(driver)
    response = driver.submit(_held(driver, "Email (trusted attester)"), sender="wallet")
    assert response.status_code == 204


def test_replayed_presentation_fails(driver):
    _ready(driver)
    held = _held(driver, "Email (trusted attester)")
    envelope = driver.wallet.submit(driver.wallet_session, held, driver.credential_challenge)
    first = driver.post_credentials(envelope)
    assert first.status_code == 204
    again = driver.post_credentials(envelope)
    assert again.status_code == 401  # the login is over
    # same envelope in a new login of the same browser: the old challenge is gone
    _ready(driver)
    replay = driver.post_credentials(envelope)
    assert replay.status_code == 400


def test_a_rejected_submission_changes_no_state(driver):
    _ready(driver)
    bad = driver.submit(_held(driver, "Email (revoked)"))
    assert bad.status_code == 400
    good = driver.submit(_held(driver, "Email (trusted attester)"))
    assert good.status_code == 204


# -- 7. token --

def _code(driver, params=CODE) -> str:
    return driver.login(**params)["code"]


def _redeem(driver, the_code, **overrides):
    form = {"grant_type": "authorization_code", "code": the_code, "redirect_uri": OPENDID_REDIRECT,
            "client_id": "opendid-client", "client_secret": SECRET, **overrides}
    return driver.token(**form)


@pytest.mark.parametrize("overrides, status, error", [
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ({"code": "unknown"}, 400, "invalid_grant"),
    ({"redirect_uri": "http://127.0.0.1:1606/other"}, 400, "invalid_grant"),
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_secret": ""}, 401, "invalid_client"),
    ({"client_id": "did-client"}, 400, "invalid_grant"),
])
def test_token_errors(driver, overrides, status, error):
    code = _code(driver)
    response = _redeem(driver, code, **overrides)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert _redeem(driver, code).status_code == 200  # the failed attempts changed nothing


def test_code_works_once_and_reuse_revokes_what_it_issued(driver):
    code = _code(driver)
    first = _redeem(driver, code).json()
    userinfo = driver.http.get(driver.url("/api/v1/userinfo"),
                               headers={"Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status_code == 200
    second = _redeem(driver, code)
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")
    userinfo = driver.http.get(driver.url("/api/v1/userinfo"),
                               headers={"Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status_code == 401
    refreshed = driver.http.post(driver.url("/api/v1/refresh"),
                                 json={"refreshToken": first["refresh_token"]})
    assert refreshed.status_code == 401


# -- 8. refresh --

def test_refresh_rotates_and_works_once(driver, provisioned):
    tokens = _redeem(driver, _code(driver)).json()
    response = driver.http.post(driver.url("/api/v1/refresh"),
                                json={"refreshToken": tokens["refresh_token"]})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "refreshToken"}
    claims = decode_jwt_claims(body["refreshToken"])
    assert claims["aud"] == "authentication" and claims["sub"] == provisioned["user"]["did"]
    chained = driver.http.post(driver.url("/api/v1/refresh"),
                               json={"refreshToken": body["refreshToken"]})
    assert chained.status_code == 200
    again = driver.http.post(driver.url("/api/v1/refresh"),
                             json={"refreshToken": tokens["refresh_token"]})
    assert (again.status_code, again.text) == (401, "Invalid token")
    # a reuse revokes the grant, the newest refresh token with it (RFC 9700 §4.14.2)
    latest = driver.http.post(driver.url("/api/v1/refresh"),
                              json={"refreshToken": chained.json()["refreshToken"]})
    assert (latest.status_code, latest.text) == (401, "Invalid token")


@pytest.mark.parametrize("body", [{}, {"refreshToken": "nope"}, {"refreshToken": 5}, [], "x"])
def test_refresh_with_bad_input(opendid, body):
    response = requests.post(opendid.url + "/api/v1/refresh", json=body)
    assert (response.status_code, response.text) == (401, "Invalid token")


# -- 9/10/11. endpoint, health, domain linkage --

def test_endpoint_and_health(opendid, chain_url):
    assert requests.get(opendid.url + "/api/v1/endpoint").json() == chain_url
    health = requests.get(opendid.url + "/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_did_configuration_is_signed_by_the_assertion_key(opendid, chain, provisioned):
    data = requests.get(opendid.url + "/.well-known/did-configuration.json").json()
    assert data["@context"] == "https://identity.foundation/.well-known/did-configuration/v1"
    credential = data["linked_dids"][0]
    did = provisioned["service"]["did"]
    assert "DomainLinkageCredential" in credential["type"]
    assert credential["credentialSubject"]["id"] == did
    assert credential["credentialSubject"]["origin"] == "http://localhost:3001"
    proof = credential["proof"]
    assert proof["type"] == "KILTSelfSigned2020"
    assert proof["proofPurpose"] == "assertionMethod"
    document = chain.did(did)
    assert proof["verificationMethod"] == f"{did}#0x{document.assertion_method.id.hex()}"
    verify_signature("sr25519", document.assertion_method.public_key,
                     from_hex(credential["credentialSubject"]["rootHash"]),
                     from_hex(proof["signature"]))
    assert credential["issuanceDate"].endswith("Z") and len(credential["issuanceDate"]) == 24


# -- 6. DID-only login --

DID_LOGIN = {**CODE, "client_id": "did-client", "response_type": "id_token"}


def test_did_only_login(driver, provisioned):
    driver.authorize(**DID_LOGIN)
    token = driver.did_token("n0nce")
    response = driver.did_login(token)
    assert response.status_code == 204, response.text
    params = result_params(response.headers["Location"])
    claims = decode_jwt_claims(params["id_token"])
    assert claims["sub"] == provisioned["user"]["did"]
    assert claims["w3n"] == provisioned["user"]["web3name"]
    # the same token again, in a new login with the same nonce: replay
    driver.authorize(**DID_LOGIN)
    replay = driver.did_login(token)
    assert replay.status_code == 401 and replay.text.startswith("Failed to verify JWT")


@pytest.mark.parametrize("nonce, overrides", [
    ("other", {}),
    ("n0nce", {"exp": 1, "nbf": 0}),
    ("n0nce", {"nbf": 4102444800, "exp": 4102444900}),
    ("n0nce", {"sub": "did:kilt:4p4joKXxjuU1DrupnATY4U8biap7bysGb9RUsQBsfLvunoWs"}),
])
def test_did_only_login_checks_nonce_and_time(driver, nonce, overrides):
    driver.authorize(**DID_LOGIN)
    response = driver.did_login(driver.did_token(nonce, **overrides))
    assert response.status_code == 401
    assert response.text.startswith("Failed to verify JWT")


def test_did_only_login_with_a_bad_signature(driver):
    driver.authorize(**DID_LOGIN)
    token = driver.did_token("n0nce")
    head, payload, _ = token.split(".")
    import base64
    forged = base64.b64encode(("0x" + "11" * 64).encode()).decode()
    response = driver.did_login(f"{head}.{payload}.{forged}")
    assert (response.status_code, response.text) == (401, "Failed to verify DID Signature")


@pytest.mark.parametrize("token", ["a.b", "x.y.z", "....", "%00"])
def test_did_only_login_with_garbage(driver, token):
    driver.authorize(**DID_LOGIN)
    response = driver.did_login(token)
    assert response.status_code == 401


def test_did_only_login_is_refused_for_clients_with_requirements(driver):
    driver.authorize(**CODE)
    response = driver.did_login(driver.did_token("n0nce"))
    assert response.status_code == 401


# -- bad input in general --

def test_oversized_body_is_413(driver):
    _ready(driver)
    response = driver.post_credentials({"ciphertext": "0x" + "00" * 40000})
    assert response.status_code == 413


def test_malformed_json_is_a_4xx(driver):
    _ready(driver)
    response = driver.http.post(driver.url("/api/v1/credentials"), data="{not json",
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    response = driver.http.post(driver.url("/api/v1/challenge"), data=b"\xff\xfe",
                                headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


def test_unknown_paths_and_methods_are_4xx(opendid):
    assert requests.get(opendid.url + "/api/v1/nothing").status_code == 404
    assert requests.delete(opendid.url + "/api/v1/token").status_code == 405


def test_the_wallet_session_is_bound_to_its_login(opendid, wallet, chain):
    """A challenge answered in one browser session cannot be used in another."""
    first = LoginDriver(opendid.url, wallet, chain)
    first.authorize(**CODE)
    data = first.http.get(first.url("/api/v1/challenge")).json()
    session = wallet.start_session(data["dAppEncryptionKeyUri"], data["challenge"], chain)
    second = LoginDriver(opendid.url, wallet, chain)
    second.authorize(**CODE)
    response = second.http.post(second.url("/api/v1/challenge"),
                                json=copy.deepcopy(session.challenge_response))
    assert (response.status_code, response.text) == DOES_NOT_MATCH
    assert first.http.post(first.url("/api/v1/challenge"),
                           json=session.challenge_response).status_code == 200


def test_light_dids_as_the_upstream_suite_makes_them(driver, vectors):
    """The upstream OpenDID suite's light DID (secret key inside its CBOR, no fragment)."""
    case = vectors["light-did"]["cases"][0]
    secret = from_hex(case["keyAgreement"]["secretKey"])
    driver.authorize(**CODE)
    data = driver.http.get(driver.url("/api/v1/challenge")).json()
    session = driver.wallet.start_session(data["dAppEncryptionKeyUri"], data["challenge"],
                                          driver.chain)
    ciphertext, nonce = box_encrypt(from_hex(data["challenge"]), secret,
                                    session.dapp_public_key)
    response = driver.http.post(driver.url("/api/v1/challenge"), json={
        "encryptionKeyUri": case["uri"], "encryptedChallenge": to_hex(ciphertext),
        "nonce": to_hex(nonce)})
    assert (response.status_code, response.text) == (200, "Challenge accepted")
    session.secret = secret
    envelope = driver.http.get(driver.url("/api/v1/credentials")).json()
    assert envelope["receiverKeyUri"] == case["uri"]
    _, challenge = driver.wallet.read_request(session, envelope)
    driver.wallet_session, driver.credential_challenge = session, challenge
    assert driver.submit().status_code == 204

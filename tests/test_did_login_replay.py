"""DID-only login over real HTTP against the dev chain, as an attacker would try it: a captured
token replayed in a fresh session in every other spelling, a token signed by one DID that names
another, a token too long-lived; each is a 401 with no code, and the genuine token still works
once."""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from conftest import OPENDID_REDIRECT, OUTPUT, bind_server, start_server, write_test_config
from opendid.application import create_app
from opendid.devtools.devchain import free_port
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims, result_params
from opendid.devtools.tcp_proxy import TcpProxy
from opendid.kilt.chain import ChainClient
from opendid.kilt.didjwt import make_did_jwt, signing_data, unsigned_did_jwt
from opendid.kilt.encoding import to_hex
from opendid.kilt.keys import DidKeys
from tests.respell import did_respellings, token_respellings, typed_spelling
from tests.test_didjwt import NOW, resolve
from tests.test_resilience import Gunicorn

NONCE = "n0nce"
DID_LOGIN = {"client_id": "did-client", "redirect_uri": OPENDID_REDIRECT,
             "response_type": "id_token", "scope": "openid", "state": "s", "nonce": NONCE}


def fresh(driver: LoginDriver) -> LoginDriver:
    """A new browser (its own cookie jar) that started a DID-only login with the same nonce:
    the nonce is the relying party's, so an attacker can ask for it too."""
    other = LoginDriver(driver.base_url, driver.wallet, driver.chain)
    started = other.authorize(**DID_LOGIN)
    assert started.status_code == 302, started.text
    return other


def refused(response: requests.Response, token: str = "") -> bool:
    """401 and no code; a newline in the path does not even match the route (404)."""
    expected = 404 if "\n" in token else 401
    return response.status_code == expected and "Location" not in response.headers


def token_for_every_respelling(driver: LoginDriver) -> str:
    """A token whose parts contain '+' or '/' and padding, so that every re-spelling
    (url-safe alphabet, no padding) differs from it."""
    for filler in range(3):  # '?' and '~' in every alignment put '/' and '+' in the base64
        raw = driver.did_token(NONCE, jti="???~~~" + "x" * filler)
        head, body, _ = raw.split(".")
        if any(c in head + body for c in "+/") and body.endswith("="):
            return raw
    raise AssertionError("one of three lengths pads")


def test_a_captured_token_logs_in_once_however_it_is_spelled(driver, provisioned):
    raw = token_for_every_respelling(driver)
    variants = token_respellings(raw)
    assert {"upper-case hex", "ed25519 type byte on an sr25519 signature",
            "stray character in signature",
            "unpadded signature", "unpadded header and payload", "urlsafe header and payload",
            "non-canonical last base64 digit"} <= set(variants)
    for name, variant in variants.items():  # before the genuine use: refused by its spelling
        assert refused(fresh(driver).did_login(variant), variant), name
    done = fresh(driver).did_login(raw)
    assert done.status_code == 204, done.text
    claims = decode_jwt_claims(result_params(done.headers["Location"])["id_token"])
    assert claims["sub"] == provisioned["user"]["did"]
    assert refused(fresh(driver).did_login(raw))
    for name, variant in variants.items():  # and after it
        assert refused(fresh(driver).did_login(variant), variant), name


@pytest.mark.parametrize("first_typed", [True, False])
def test_the_typed_and_raw_signature_are_one_login(driver, first_typed):
    """The contract allows a MultiSignature type byte before the signature; both spellings
    verify, and whichever comes first uses the signature up for the other."""
    raw = driver.did_token(NONCE)
    typed = typed_spelling(raw)
    first, second = (typed, raw) if first_typed else (raw, typed)
    done = fresh(driver).did_login(first)
    assert done.status_code == 204, done.text
    again = fresh(driver).did_login(second)
    assert refused(again) and "already used" in again.text


def test_racing_uses_of_one_token_log_in_once(driver):
    raw = driver.did_token(NONCE)
    sessions = [fresh(driver) for _ in range(4)]
    results: list[int] = []
    barrier = threading.Barrier(len(sessions))

    def use(session: LoginDriver) -> None:
        barrier.wait()
        results.append(session.did_login(raw).status_code)

    threads = [threading.Thread(target=use, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [204, 401, 401, 401]


def _signed(keys: DidKeys, claims: dict[str, Any], kid: str | None = None) -> str:
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "crv": "Ed25519",
              "kid": kid or keys.authentication_key_uri.uri, "kty": "sr25519"}
    payload = {"nonce": NONCE, "exp": now + 60, "nbf": now - 1, **claims}
    unsigned = unsigned_did_jwt(header, payload)
    return make_did_jwt(unsigned, to_hex(keys.authentication.sign(
        signing_data(unsigned).encode("ascii"))))


def test_a_token_signed_by_one_did_that_names_another_is_refused(driver, provisioned):
    """Both DIDs exist on chain and every signature verifies against its kid: only the binding
    of iss/sub to the kid's DID stops these."""
    user = DidKeys.from_mnemonic(provisioned["user"]["mnemonic"])
    attester = DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"])
    user_did, attester_did = user.did.uri, attester.did.uri
    # the user's key signs, the token names the attester
    names_other = _signed(user, {"iss": attester_did, "sub": attester_did})
    response = fresh(driver).did_login(names_other)
    assert refused(response) and "does not belong" in response.text
    # the attester's key signs, the token names the user
    names_user = _signed(attester, {"iss": user_did, "sub": user_did})
    response = fresh(driver).did_login(names_user)
    assert refused(response) and "does not belong" in response.text
    # and each key for its own DID does log in (so the refusals above are the binding's)
    assert fresh(driver).did_login(_signed(attester, {"iss": attester_did,
                                                      "sub": attester_did})).status_code == 204


@pytest.mark.parametrize("name", ["two-byte prefix", "0x hex", "generic prefix 42"])
def test_the_signers_did_in_another_spelling_is_refused(driver, provisioned, name):
    """Signed by the user's own key, with iss, sub and kid all naming the user's account in a
    second spelling: a lenient parser resolves it on chain and makes the string `sub`."""
    user = DidKeys.from_mnemonic(provisioned["user"]["mnemonic"])
    spelled = did_respellings(user.did.uri)[name]
    key_id = user.authentication_key_uri.uri.split("#")[1]
    for kid in (None, f"{spelled}#{key_id}"):
        response = fresh(driver).did_login(_signed(user, {"iss": spelled, "sub": spelled}, kid))
        assert refused(response), response.text
    assert fresh(driver).did_login(_signed(user, {"iss": user.did.uri,
                                                  "sub": user.did.uri})).status_code == 204


@pytest.mark.parametrize("name", ["two-byte prefix", "0x hex", "generic prefix 42"])
def test_did_key_lookup_accepts_only_the_canonical_did(driver, provisioned, name):
    did = provisioned["user"]["did"]
    found = driver.http.get(driver.url(f"/api/v1/did-key/{did}"), timeout=30)
    assert found.status_code == 200 and found.json()["keyUri"].startswith(did + "#0x")
    spelled = did_respellings(did)[name]
    response = driver.http.get(driver.url(f"/api/v1/did-key/{spelled}"), timeout=30)
    assert response.status_code == 400 and response.text.startswith("Invalid DID")


@pytest.mark.parametrize("name", ["two-byte prefix", "0x hex"])
def test_a_message_sender_in_another_spelling_is_refused(driver, provisioned, name):
    """The owner's DID, spelled otherwise, as the message `sender`: a clear 400, no code."""
    driver.authorize(client_id="opendid-client", redirect_uri=OPENDID_REDIRECT,
                     response_type="code", scope="openid", state="s", nonce=NONCE)
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    response = driver.submit(sender=did_respellings(provisioned["user"]["did"])[name])
    assert response.status_code == 400 and "Location" not in response.headers
    assert "sender is not the credential owner" in response.text


@pytest.mark.parametrize("claims, reason", [
    ({"jti": "signed for another nonce"}, "nonce"),
    ({"exp": NOW + 3600}, "lifetime"),
    ({"nbf": NOW - 3000, "exp": NOW + 30}, "lifetime"),
    ({"nbf": NOW + 600, "exp": NOW + 660}, "not valid yet"),
    ({"exp": NOW - 120, "nbf": NOW - 180}, "expired"),
])
def test_claims_that_fail_are_401_and_change_nothing(driver, claims, reason):
    session = fresh(driver)
    nonce = "other" if reason == "nonce" else NONCE
    response = session.did_login(driver.did_token(nonce, **resolve(claims)))
    assert refused(response) and reason in response.text
    assert session.did_login(driver.did_token(NONCE)).status_code == 204  # session still usable


def test_the_lifetime_bound_comes_from_the_config(driver, opendid):
    config = opendid.services.config
    assert config.didLoginMaxTokenLifetime == 300
    now = int(time.time())
    response = fresh(driver).did_login(driver.did_token(NONCE, nbf=now, exp=now + 300))
    assert response.status_code == 204, response.text
    response = fresh(driver).did_login(driver.did_token(NONCE, nbf=now, exp=now + 301))
    assert refused(response) and "lifetime exceeds 300" in response.text


# -- the token travels in the URL path: no log line may carry it ----------------------------------

def _secrets_of(token: str) -> list[str]:
    head, body, sig = token.split(".")
    return [token, head, body, sig, base64.b64decode(sig).decode()]


def test_gunicorns_access_log_never_carries_the_token(provisioned, wallet, chain, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    server = Gunicorn(config, tmp_path / "instance", port, workers=1)
    log_file = OUTPUT / f"gunicorn-{port}.log"
    server.start()
    try:
        driver = LoginDriver(server.url, wallet, chain)
        driver.authorize(**DID_LOGIN)
        token = driver.did_token(NONCE)
        done = driver.did_login(token)
        assert done.status_code == 204, done.text
        id_token = result_params(done.headers["Location"])["id_token"]
        replay = fresh(driver).did_login(token)
        assert refused(replay)
        encoded = fresh(driver).http.post(  # the slash percent-escaped
            f"{server.url}/api/v1/did%2F{token}", allow_redirects=False, timeout=30)
        assert refused(encoded)
    finally:
        server.stop()
    logged = log_file.read_text()
    assert logged.count('"POST /api/v1/did/[redacted] HTTP/1.1" 204') == 1, logged[-2000:]
    assert logged.count('"POST /api/v1/did/[redacted] HTTP/1.1" 401') == 2
    for secret in [*_secrets_of(token), id_token]:
        assert secret not in logged


def test_the_werkzeug_request_log_never_carries_the_token(driver, caplog):
    caplog.set_level(logging.INFO)
    driver.authorize(**DID_LOGIN)
    token = driver.did_token(NONCE)
    assert driver.did_login(token).status_code == 204
    assert refused(fresh(driver).did_login(token))
    assert "/api/v1/did/[redacted]" in caplog.text
    for secret in _secrets_of(token):
        assert secret not in caplog.text


def test_a_503_during_a_did_login_does_not_log_the_token(provisioned, chain_url, wallet, chain,
                                                          tmp_path, caplog):
    """The chain becomes unreachable after the token's claims were checked: the error handler
    logs the request path, which is where the token is."""
    caplog.set_level(logging.INFO)
    proxy = TcpProxy(urlsplit(chain_url).port).start()
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    server.app = create_app(config, instance_path=tmp_path / "instance",
                            chain=ChainClient(proxy.url, timeout=2, max_backoff=0.5))
    start_server(server)
    try:
        driver = LoginDriver(url, wallet, chain)
        driver.authorize(**DID_LOGIN)
        token = driver.did_token(NONCE)
        proxy.stop()
        down = driver.did_login(token)
        assert (down.status_code, down.text) == (503, "KILT chain unreachable")
    finally:
        server.shutdown()
        proxy.stop()
    assert "POST /api/v1/did/[redacted]: " in caplog.text
    for secret in _secrets_of(token):
        assert secret not in caplog.text

"""The bad-input classes found by hand (issue 11), each sent where its parser runs, over real
HTTP: a 4xx, never a 500, and the login goes on afterwards as if nothing happened (no state
was consumed). tests/test_fuzz_http.py throws generated garbage at every endpoint.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from conftest import OPENDID_REDIRECT, SECRET
from opendid.application import create_app
from opendid.devtools.login_driver import LoginDriver
from opendid.kilt.crypto import box_encrypt, x25519_public_key
from opendid.kilt.encoding import to_hex

DEEP_LIST = b"[" * 30000 + b"]" * 30000
DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000
JSON = {"Content-Type": "application/json"}


def _post(driver: LoginDriver, path: str, body: bytes) -> requests.Response:
    return driver.http.post(driver.url(path), data=body, headers=JSON, timeout=30,
                            allow_redirects=False)


def _start(driver: LoginDriver, client_id: str = "opendid-client") -> None:
    started = driver.authorize(client_id=client_id, redirect_uri=OPENDID_REDIRECT,
                               response_type="code", state="s")
    assert started.status_code == 302, started.text


@pytest.mark.parametrize("body", [DEEP_LIST, DEEP_OBJECT,
                                  b'{"encryptionKeyUri": ' + DEEP_LIST + b"}"],
                         ids=["list", "object", "field"])
def test_deeply_nested_challenge_response_is_a_400(driver: LoginDriver, body: bytes) -> None:
    """The session challenge is issued, so POST /challenge parses the body: RecursionError
    used to escape as a 500. The challenge is still there afterwards."""
    _start(driver)
    challenge = driver.http.get(driver.url("/api/v1/challenge"), timeout=30).json()
    refused = _post(driver, "/api/v1/challenge", body)
    assert refused.status_code == 400, refused.text
    assert driver.wallet_session is None
    session = driver.wallet.start_session(challenge["dAppEncryptionKeyUri"],
                                          challenge["challenge"], driver.chain)
    accepted = driver.http.post(driver.url("/api/v1/challenge"), json=session.challenge_response,
                                timeout=30)
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize("body", [DEEP_LIST, b'{"ciphertext": ' + DEEP_OBJECT + b"}",
                                  b'{"ciphertext": "\\ud800", "nonce": "0x00"}'],
                         ids=["list", "field", "surrogate"])
def test_bad_credential_body_is_a_400_and_the_login_goes_on(driver: LoginDriver,
                                                            body: bytes) -> None:
    """With a credential requested, POST /credentials parses the body (the old test's session
    never got this far, so the parser never ran)."""
    _start(driver)
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    refused = _post(driver, "/api/v1/credentials", body)
    assert refused.status_code == 400, refused.text
    done = driver.submit()
    assert done.status_code == 204, done.text


def test_deeply_nested_refresh_body_is_a_401(driver: LoginDriver) -> None:
    code = driver.login(client_id="opendid-client", redirect_uri=OPENDID_REDIRECT,
                        response_type="code", state="s")["code"]
    tokens = driver.token(grant_type="authorization_code", code=code,
                          redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                          client_secret=SECRET).json()
    refused = _post(driver, "/api/v1/refresh", b'{"refreshToken": ' + DEEP_LIST + b"}")
    assert refused.status_code == 401, refused.text
    rotated = driver.http.post(driver.url("/api/v1/refresh"),
                               json={"refreshToken": tokens["refresh_token"]}, timeout=30)
    assert rotated.status_code == 200, rotated.text


@pytest.mark.parametrize("value", ["[" * 3000 + "]" * 3000,
                                   '[{"key": ' + "[" * 900 + "]" * 900 + "}]"],
                         ids=["list", "key"])
def test_deeply_nested_wallet_list_renders_no_wallets(opendid: Any, value: str) -> None:
    """/login/wallets parses its form field as JSON: too deep is "no wallets", not a 500 (a
    key 900 levels deep may parse, and then str() of it recursed into the limit)."""
    response = requests.post(opendid.url + "/login/wallets", data={"wallets": value}, timeout=30)
    assert response.status_code == 200, response.text
    assert "data-wallet" not in response.text


@pytest.mark.parametrize("token", ["e30.e30.%C3%A9", "e30.e30.%E2%98%83"])
def test_did_jwt_with_non_ascii_part_is_a_401(driver: LoginDriver, token: str) -> None:
    _start(driver, "did-client")
    refused = driver.http.post(driver.url("/api/v1/did/" + token), timeout=30,
                               allow_redirects=False)
    assert refused.status_code == 401, refused.text


def test_did_jwt_with_deeply_nested_header_is_a_401(driver: LoginDriver) -> None:
    _start(driver, "did-client")
    header = base64.b64encode(b"[" * 2000 + b"]" * 2000).decode()
    refused = driver.http.post(driver.url(f"/api/v1/did/{header}.e30.MHgwMA"), timeout=30,
                               allow_redirects=False)
    assert refused.status_code == 401, refused.text


def test_sealed_deeply_nested_message_is_a_400(driver: LoginDriver, opendid: Any) -> None:
    _start(driver)
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    keys = driver.wallet.keys
    service_key = x25519_public_key(opendid.services.login.keys.secret)
    ciphertext, nonce = box_encrypt(DEEP_LIST[:10000] + DEEP_LIST[-10000:],
                                    keys.key_agreement_secret, service_key)
    envelope = {"ciphertext": to_hex(ciphertext), "nonce": to_hex(nonce),
                "senderKeyUri": keys.key_agreement_key_uri.uri,
                "receiverKeyUri": opendid.services.config.session.keyUri}
    refused = driver.post_credentials(envelope)
    assert refused.status_code == 400, refused.text
    assert driver.submit().status_code == 204


@pytest.fixture(scope="module")
def dev_client(opendid: Any, provisioned: dict[str, Any],
               tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(opendid.config_path, dev=True, wallet_path=provisioned["wallet"],
                     instance_path=tmp_path_factory.mktemp("dev-bad-input"))
    return app.test_client()


def test_dev_wallet_refuses_an_unpaired_surrogate(dev_client: Any, opendid: Any) -> None:
    """A JSON string like "\\ud800" parses, then cannot be saved in the session (500)."""
    key_uri = opendid.services.config.session.keyUri
    fields = f'"dAppEncryptionKeyUri": "{key_uri}", "challenge": "0x{"00" * 32}"'
    body = ("{" + fields + ', "dAppName": "\\ud800"}').encode()
    response = dev_client.post("/dev/wallet/session", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/dev/wallet/session", "/dev/wallet/sign"])
def test_dev_wallet_refuses_deep_json(dev_client: Any, path: str) -> None:
    response = dev_client.post(path, data=b'{"index": ' + DEEP_LIST + b"}",
                               content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)

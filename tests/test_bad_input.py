"""Garbage at every endpoint gets a 4xx, never a 500 (security.md row 8)."""

from __future__ import annotations

import itertools

import pytest
import requests

from conftest import OPENDID_REDIRECT
from opendid.application import create_app

GARBAGE_JSON = [None, 0, "x", [], {}, {"a": None}, [1, {"b": []}], {"ciphertext": 5},
                {"ciphertext": "0x" + "zz", "nonce": [], "senderKeyUri": {},
                 "receiverKeyUri": 1},
                {"encryptionKeyUri": "did:kilt:light:00" + "\u00e9" * 40,
                 "encryptedChallenge": "0x00", "nonce": "0x" + "00" * 24},
                {"refreshToken": "a.b.c"}, {"refreshToken": None}]
RAW_BODIES = [b"", b"\x00\xff", b"{", b"[]" * 1000, "\u2603".encode()]


def _requests_for(url: str):
    for path, method in [("/api/v1/challenge", "POST"), ("/api/v1/credentials", "POST"),
                         ("/api/v1/refresh", "POST"), ("/api/v1/token", "POST"),
                         ("/api/v1/did/x.y.z", "POST"), ("/login/wallets", "POST")]:
        for body in GARBAGE_JSON:
            yield method, url + path, {"json": body}
        for raw in RAW_BODIES:
            yield method, url + path, {"data": raw,
                                       "headers": {"Content-Type": "application/json"}}
    for query in ["", "client_id=%00", "client_id=opendid-client&redirect_uri=%ff",
                  "client_id=opendid-client&client_id=x", "response_type=" + "a" * 5000,
                  f"client_id=opendid-client&redirect_uri={OPENDID_REDIRECT}&response_type="
                  "code&code_challenge=x&code_challenge_method=S512"]:
        yield "GET", f"{url}/api/v1/authorize?{query}", {}
    for query in ["", "step=%00&mode=x", "reason=" + "r" * 3000, "detail=\u2603"]:
        yield "GET", f"{url}/login/progress?{query}", {}
        yield "GET", f"{url}/login/failure?{query}", {}
    for did in ["x", "did:kilt:" + "4" * 60, "did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTB"]:
        yield "GET", f"{url}/api/v1/did-key/{did}", {}
    yield "GET", f"{url}/login/cancel", {}


def test_garbage_never_causes_a_500(driver, opendid):
    driver.authorize(client_id="opendid-client", redirect_uri=OPENDID_REDIRECT,
                     response_type="code", state="s")
    driver.open_session()
    for session, (method, url, options) in itertools.product(
            [requests.Session(), driver.http], _requests_for(opendid.url)):
        response = session.request(method, url, timeout=30, allow_redirects=False,
                                   **options)
        assert response.status_code < 500, (method, url, options, response.text)


@pytest.fixture(scope="module")
def dev_client(opendid, provisioned, tmp_path_factory):
    app = create_app(opendid.config_path, dev=True, wallet_path=provisioned["wallet"],
                     instance_path=tmp_path_factory.mktemp("dev-bad-input"))
    return app.test_client()


def test_dev_wallet_endpoints_answer_garbage_with_4xx(dev_client):
    for path in ["/dev/wallet/session", "/dev/wallet/submit", "/dev/wallet/sign"]:
        for body in GARBAGE_JSON:
            assert dev_client.post(path, json=body).status_code < 500, (path, body)
    assert dev_client.post("/dev/wallet/request", data={"message": "{"}).status_code < 500
    assert dev_client.post("/dev/wallet/session", json={
        "dAppEncryptionKeyUri": "did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTBZXKnWBcQqTh6H#0x"
        + "00" * 32, "challenge": "0x" + "00" * 32}).status_code == 400

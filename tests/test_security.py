"""The rows of security.md not covered elsewhere: races on one-time values, expiry,
constant-time secret checks, and nothing secret or personal in the logs."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from conftest import OPENDID_REDIRECT, SECRET, expire_one_time
from opendid.devtools.login_driver import LoginDriver
from opendid.login.service import SESSION_CHALLENGE

CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}


def _redeem(driver: LoginDriver, code: str):
    return driver.token(grant_type="authorization_code", code=code,
                        redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                        client_secret=SECRET)


def test_racing_redemptions_of_one_code_yield_one_token(driver):
    code = driver.login(**CODE)["code"]
    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(r.status_code for r in pool.map(lambda _: _redeem(driver, code),
                                                          range(6)))
    assert statuses.count(200) == 1 and statuses.count(400) == 5


def test_racing_submissions_of_one_presentation_log_in_once(driver):
    envelope = driver.answer(**CODE)
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: driver.post_credentials(envelope).status_code,
                                 range(4)))
    assert statuses.count(204) == 1, statuses


def test_expired_challenges_are_refused(driver, opendid):
    driver.authorize(**CODE)
    data = driver.http.get(driver.url("/api/v1/challenge")).json()
    session = driver.wallet.start_session(data["dAppEncryptionKeyUri"], data["challenge"],
                                          driver.chain)
    expire_one_time(opendid.services, SESSION_CHALLENGE, data["challenge"])
    response = driver.http.post(driver.url("/api/v1/challenge"), json=session.challenge_response)
    assert response.status_code == 401


def test_client_secrets_are_compared_in_constant_time(monkeypatch):
    import hmac

    from opendid.oidc.token_endpoint import Client
    from opendid.store.clients import ClientRecord
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    from opendid.store.clients import hash_client_secret
    plain = Client(ClientRecord("c", "right-secret", ["https://x/cb"]))  # as in config.yaml
    assert plain.check_client_secret("right-secret")
    for wrong in ("wrong-secret", "right-secre", "right-secret ", "RIGHT-SECRET", ""):
        assert not plain.check_client_secret(wrong)
    hashed = Client(ClientRecord("h", hash_client_secret("right-secret"), ["https://x/cb"]))
    assert hashed.check_client_secret("right-secret")
    for wrong in ("wrong-secret", hash_client_secret("right-secret"),
                  hash_client_secret("right-secret")[len("sha256$"):]):
        assert not hashed.check_client_secret(wrong)  # the stored hash is not the secret
    assert not Client(ClientRecord("p", None, ["https://x/cb"])).check_client_secret("")
    assert len(calls) == 10  # every comparison went through compare_digest


def test_no_light_did_secret_message_or_token_in_the_logs(driver, vectors, caplog):
    caplog.set_level(logging.DEBUG)
    # a light DID as the upstream test suite makes it: its CBOR carries the secret key
    secret_uri = vectors["light-did"]["cases"][0]["uri"]
    driver.authorize(**CODE)
    data = driver.http.get(driver.url("/api/v1/challenge")).json()
    driver.http.post(driver.url("/api/v1/challenge"), json={
        "encryptionKeyUri": secret_uri, "encryptedChallenge": "0x00", "nonce": "0x00"})
    params = driver.login(**CODE)
    tokens = _redeem(driver, params["code"]).json()
    logged = caplog.text
    details = secret_uri.split(":")[-1]
    assert details not in logged
    assert driver.wallet_session.light_did.split(":")[-1] not in logged
    assert "some@example.org" not in logged
    for value in (params["code"], tokens["access_token"], tokens["refresh_token"],
                  tokens["id_token"], SECRET, data["challenge"]):
        assert value not in logged
    assert driver.wallet.did in logged  # DIDs and outcomes are logged

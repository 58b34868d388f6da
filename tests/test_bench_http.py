"""The benchmark's light HTTP client must log in exactly as `requests` does."""

from __future__ import annotations

from conftest import OPENDID_REDIRECT, SECRET, Opendid
from opendid.bench.http import LightSession
from opendid.devtools.login_driver import LoginDriver
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient


def test_a_whole_code_login_through_the_light_client(opendid: Opendid, wallet: Wallet,
                                                     chain: ChainClient) -> None:
    calls: list[tuple[str, str]] = []
    http = LightSession(lambda method, path, ms: calls.append((method, path)))
    driver = LoginDriver(opendid.url, wallet, chain, http=http)
    code = driver.login(client_id="opendid-client", redirect_uri=OPENDID_REDIRECT,
                        response_type="code", scope="openid", state="s", nonce="n")["code"]
    token = driver.token(grant_type="authorization_code", code=code,
                         redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                         client_secret=SECRET)
    assert token.status_code == 200, token.text
    assert token.json()["token_type"].lower() == "bearer"
    assert [path for _, path in calls] == [
        "/api/v1/authorize", "/api/v1/challenge", "/api/v1/challenge", "/api/v1/credentials",
        "/api/v1/credentials", "/api/v1/token"]
    http.close()


def test_cookies_are_kept_replaced_and_deleted() -> None:
    http = LightSession()
    http._keep_cookie("sid=abc; HttpOnly; Path=/")
    http._keep_cookie("other=1")
    http._keep_cookie("sid=def; Path=/")
    assert http._jar == {"sid": "def", "other": "1"}
    http._keep_cookie("sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/")
    http._keep_cookie("other=1; Max-Age=0")
    assert http._jar == {}

"""Several OpenDID instances on one Redis (issue 8 §2): separate processes and instance folders,
one state store. A login started on one finishes on the other; a code is redeemed once and a
refresh token rotated once across both, however the requests race; Redis restarted mid-login
is a clean 503 during, no half-done login is accepted after, and new logins work again without
restarting OpenDID."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import OPENDID_REDIRECT, SECRET, write_test_config
from opendid.devtools.devchain import free_port
from opendid.devtools.login_driver import LoginDriver, result_params
from opendid.devtools.redis_server import RedisServer
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from tests.gunicorn_server import Gunicorn

CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}
RACERS = 8


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the restart test stops and starts it."""
    with RedisServer(tmp_path_factory.mktemp("shared-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def instances(provisioned: dict[str, Any], redis: RedisServer,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Gunicorn]]:
    """Two `opendid serve` processes (one worker each), each with its own instance folder and
    config file, sharing the Redis. (Both names are 127.0.0.1: a browser's cookie goes to
    either, as it would to two hosts behind one load balancer.)"""
    started: list[Gunicorn] = []
    try:
        for name in ("a", "b"):
            folder = tmp_path_factory.mktemp(f"instance-{name}")
            port = free_port()
            config = write_test_config(provisioned, folder / "config.yaml",
                                       f"http://127.0.0.1:{port}", [OPENDID_REDIRECT])
            started.append(Gunicorn(config, folder / "instance", port, workers=1,
                                    OPENDID_STORE_URL=redis.url).start())
        yield started
    finally:
        for server in started:
            server.stop()


def _redeem(url: str, code: str) -> requests.Response:
    return requests.post(url + "/api/v1/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OPENDID_REDIRECT,
        "client_id": "opendid-client", "client_secret": SECRET}, timeout=30)


def test_a_login_started_on_one_instance_finishes_on_the_other(instances, wallet: Wallet,
                                                               chain: ChainClient):
    a, b = instances
    driver = LoginDriver(a.url, wallet, chain)
    assert driver.authorize(**CODE).status_code == 302
    driver.base_url = b.url
    assert driver.open_session().status_code == 200
    driver.base_url = a.url
    driver.fetch_request()
    driver.base_url = b.url
    done = driver.submit()
    assert done.status_code == 204, done.text
    code = result_params(done.headers["Location"])["code"]
    response = _redeem(a.url, code)
    assert response.status_code == 200, response.text
    assert _redeem(b.url, code).status_code == 400


def test_a_code_is_redeemed_once_across_instances(instances, wallet: Wallet, chain: ChainClient):
    a, b = instances
    code = LoginDriver(a.url, wallet, chain).login(**CODE)["code"]
    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(lambda i: _redeem((a, b)[i % 2].url, code), range(RACERS)))
    assert sorted(r.status_code for r in answers) == [200] + [400] * (RACERS - 1)


def test_a_refresh_token_rotates_once_across_instances(instances, wallet: Wallet,
                                                       chain: ChainClient):
    a, b = instances
    code = LoginDriver(b.url, wallet, chain).login(**CODE)["code"]
    refresh = _redeem(b.url, code).json()["refresh_token"]

    def use(i: int) -> requests.Response:
        return requests.post((a, b)[i % 2].url + "/api/v1/refresh",
                             json={"refreshToken": refresh}, timeout=30)

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(use, range(RACERS)))
    assert sorted(r.status_code for r in answers) == [200] + [401] * (RACERS - 1)
    # the losers presented a rotated token: a reuse, so the winner's tokens are revoked too
    winner = next(r for r in answers if r.status_code == 200).json()
    again = requests.post(a.url + "/api/v1/refresh",
                          json={"refreshToken": winner["refreshToken"]}, timeout=30)
    assert again.status_code == 401


def test_redis_restarted_mid_login_is_a_clean_503_then_logins_work_again(
        instances, redis: RedisServer, wallet: Wallet, chain: ChainClient):
    a, b = instances
    driver = LoginDriver(a.url, wallet, chain)
    envelope = driver.answer(**CODE)

    redis.stop()
    try:
        for url in (a.url, b.url):
            down = requests.post(url + "/api/v1/credentials", json=envelope,
                                 cookies=driver.http.cookies, timeout=30)
            assert (down.status_code, down.text) == (503, "State store unreachable")
            assert "Location" not in down.headers
            page = requests.get(url + "/api/v1/authorize", params=CODE, timeout=30,
                                allow_redirects=False)
            assert page.status_code == 503
    finally:
        redis.start()

    # a fresh Redis: the half-done login is gone, not accepted
    late = driver.post_credentials(envelope)
    assert late.status_code == 401, late.text
    assert "Location" not in late.headers
    # and new logins work on both instances without restarting them
    for url in (a.url, b.url):
        code = LoginDriver(url, wallet, chain).login(**CODE)["code"]
        assert _redeem(url, code).status_code == 200


def test_the_instances_keep_nothing_of_the_state_in_their_own_folders(instances):
    """Sessions, challenges, codes and tokens are in Redis: the SQLite files hold clients only."""
    import sqlite3

    for server in instances:
        folder = Path(server.env["OPENDID_INSTANCE"])
        assert not (folder / "sessions.db").exists()
        with sqlite3.connect(folder / "opendid.db") as conn:
            for table in ("one_time", "codes", "tokens"):
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table

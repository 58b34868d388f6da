"""An unreachable chain is a 503 that changes nothing and the server recovers; state lives in
the shared store, so gunicorn workers share logins and codes survive a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import (
    OPENDID_REDIRECT,
    OUTPUT,
    SECRET,
    bind_server,
    start_server,
    write_test_config,
)
from opendid.application import create_app
from opendid.devtools.devchain import PROJECT_ROOT, free_port
from opendid.devtools.login_driver import LoginDriver
from opendid.kilt.chain import ChainClient
from tests.tcp_proxy import TcpProxy

CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}


def test_unreachable_chain_is_a_503_and_the_server_recovers(provisioned, chain_url, wallet,
                                                            chain, tmp_path):
    proxy = TcpProxy(urlsplit(chain_url).port).start()
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    app = create_app(config, instance_path=tmp_path / "instance",
                     chain=ChainClient(proxy.url, timeout=2, max_backoff=0.5))
    server.app = app
    start_server(server)
    try:
        driver = LoginDriver(url, wallet, chain)
        driver.authorize(**CODE)
        assert driver.open_session().status_code == 200
        driver.fetch_request()
        held = driver.wallet.matching(driver.wallet_session.requirements)[0]
        envelope = driver.wallet.submit(driver.wallet_session, held, driver.credential_challenge)

        proxy.stop()
        started = time.monotonic()
        down = driver.post_credentials(envelope)
        assert (down.status_code, down.text) == (503, "KILT chain unreachable")
        assert time.monotonic() - started < 5
        health = requests.get(url + "/api/v1/health")
        assert health.status_code == 503 and health.json()["failed"] == "chain"

        proxy.start()
        deadline = time.monotonic() + 15
        while (response := driver.post_credentials(envelope)).status_code == 503:
            assert time.monotonic() < deadline, "server did not recover"
            time.sleep(0.3)
        assert response.status_code == 204, response.text  # the 503 consumed nothing
        assert requests.get(url + "/api/v1/health").status_code == 200
    finally:
        server.shutdown()
        proxy.stop()


class Gunicorn:
    def __init__(self, config, instance, port: int, workers: int = 2) -> None:
        self.args = [sys.executable, "-m", "opendid.cli", "serve", "--config", str(config),
                     "--port", str(port), "--host", "127.0.0.1", "--workers", str(workers)]
        self.env = dict(os.environ, OPENDID_INSTANCE=str(instance))
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Gunicorn:
        OUTPUT.mkdir(exist_ok=True)
        log = open(OUTPUT / f"gunicorn-{self.url.rsplit(':', 1)[1]}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.args, cwd=PROJECT_ROOT, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            assert self.process.poll() is None, "gunicorn exited"
            time.sleep(0.3)
        raise AssertionError("gunicorn did not become healthy")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture()
def gunicorn_config(provisioned, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    return config, tmp_path / "instance", port


def _redeem(url: str, code: str) -> requests.Response:
    return requests.post(url + "/api/v1/token", headers={"Connection": "close"}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OPENDID_REDIRECT,
        "client_id": "opendid-client", "client_secret": SECRET})


def test_gunicorn_workers_share_logins_and_codes_survive_a_restart(gunicorn_config, wallet,
                                                                   chain):
    config, instance, port = gunicorn_config
    server = Gunicorn(config, instance, port).start()
    try:
        for _ in range(3):
            driver = LoginDriver(server.url, wallet, chain)
            driver.http.headers["Connection"] = "close"  # new connection, any worker
            code = driver.login(**CODE)["code"]
            response = _redeem(server.url, code)
            assert response.status_code == 200, response.text
        last = LoginDriver(server.url, wallet, chain)
        last.http.headers["Connection"] = "close"
        pending = last.login(**CODE)["code"]
    finally:
        server.stop()
    server = Gunicorn(config, instance, port).start()
    try:
        response = _redeem(server.url, pending)
        assert response.status_code == 200, response.text
        assert _redeem(server.url, pending).status_code == 400
    finally:
        server.stop()

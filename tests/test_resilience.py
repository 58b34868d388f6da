"""An unreachable chain is a 503 that changes nothing and the server recovers; state lives in
the shared store, so gunicorn workers share logins and codes survive a restart."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from conftest import (
    OPENDID_REDIRECT,
    SECRET,
    bind_server,
    serve_apps,
    write_test_config,
)
from opendid.application import create_app
from opendid.devtools.devchain import free_port
from opendid.devtools.login_driver import LoginDriver, result_params
from opendid.devtools.tcp_proxy import TcpProxy
from opendid.kilt.chain import ChainClient
from tests.gunicorn_server import Gunicorn

CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}


def test_unreachable_chain_is_a_503_and_the_server_recovers(provisioned, chain_url, wallet,
                                                            chain, tmp_path):
    proxy = TcpProxy(urlsplit(chain_url).port).start()
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    # max_backoff=0: the client tries the node again on the next request, so "the chain is
    # back" is checked once, not waited for (the backoff itself is test_chain's subject)
    client = ChainClient(proxy.url, timeout=2, max_backoff=0)
    server.app = create_app(config, instance_path=tmp_path / "instance", chain=client)
    try:
        with serve_apps(server):
            driver = LoginDriver(url, wallet, chain)
            envelope = driver.answer(**CODE)

            proxy.stop()
            started = time.monotonic()
            down = driver.post_credentials(envelope)
            assert (down.status_code, down.text) == (503, "KILT chain unreachable")
            assert time.monotonic() - started < 5
            health = requests.get(url + "/api/v1/health", timeout=30)
            assert health.status_code == 503 and health.json()["failed"] == "chain"

            proxy.start()
            assert requests.get(url + "/api/v1/health", timeout=30).status_code == 200
            response = driver.post_credentials(envelope)
            assert response.status_code == 204, response.text  # the 503 consumed nothing
    finally:
        client.close()
        proxy.stop()


@pytest.fixture()
def gunicorn_config(provisioned, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    return config, tmp_path / "instance", port


def _redeem(url: str, code: str) -> requests.Response:
    return requests.post(url + "/api/v1/token", headers={"Connection": "close"}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OPENDID_REDIRECT,
        "client_id": "opendid-client", "client_secret": SECRET}, timeout=30)


@contextlib.contextmanager
def only(server: Gunicorn, worker: int) -> Iterator[None]:
    """Every other worker stopped (SIGSTOP): a stopped process accepts no connection, so
    `worker` serves every request made meanwhile (each on a new connection)."""
    others = server.workers - {worker}
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def test_gunicorn_workers_share_logins_and_codes_survive_a_restart(gunicorn_config, wallet,
                                                                   chain):
    """Each step of one login is served by the other worker than the step before (the one
    that served the previous step is stopped meanwhile). The login and the code redemption
    succeed anyway, so no step relied on a worker's memory. Then a code issued before a
    restart is redeemed after it."""
    config, instance, port = gunicorn_config
    server = Gunicorn(config, instance, port).start()
    assert len(server.workers) == 2
    driver = LoginDriver(server.url, wallet, chain)
    driver.http.headers["Connection"] = "close"  # a new connection for every request
    answers: dict[str, requests.Response] = {}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("authorize", lambda: answers.setdefault("authorize", driver.authorize(**CODE))),
        ("wallet session", lambda: answers.setdefault("session", driver.open_session())),
        ("credential request", driver.fetch_request),
        ("credential", lambda: answers.setdefault("credential", driver.submit())),
        ("token", lambda: answers.setdefault("token", _redeem(
            server.url, result_params(answers["credential"].headers["Location"])["code"]))),
    ]
    workers = sorted(server.workers)
    try:
        for index, (_name, step) in enumerate(steps):
            with only(server, workers[index % 2]):
                step()
        assert answers["authorize"].status_code == 302
        assert answers["session"].status_code == 200, answers["session"].text
        assert answers["credential"].status_code == 204, answers["credential"].text
        assert answers["token"].status_code == 200, answers["token"].text

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

"""`/metrics` (issue 9 §4): off by default, refused without the token or from another address,
Prometheus text with it; real logins move the counters and histograms; a refused step counts
under its reason; one log line per outcome with request and client id and no token, code or
light DID; under gunicorn the workers' values are summed."""

from __future__ import annotations

import base64
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    OPENDID_REDIRECT,
    SECRET,
    Opendid,
    bind_server,
    serve_apps,
    write_test_config,
)
from opendid import metrics
from opendid.application import create_app
from opendid.config import ConfigError, load_config
from opendid.devtools.devchain import free_port
from opendid.devtools.login_driver import LoginDriver, result_params
from opendid.devtools.tcp_proxy import TcpProxy
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.store.clients import ClientRecord
from opendid.web.metrics import peer_allowed
from tests.gunicorn_server import Gunicorn

TOKEN = "metrics-token-0123456789abcdefghijklmnopqrstuv"
CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}
OUTCOME_LOGGER = "opendid.login.outcome"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str, token: str = TOKEN) -> Samples:
    response = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"},
                            timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def success(samples: Samples, **labels: str) -> float:
    return value(samples, "opendid_logins_total", outcome="success", **labels)


def failure(samples: Samples, reason: str, **labels: str) -> float:
    return value(samples, "opendid_logins_total", outcome="failure", reason=reason, **labels)


def outcome_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OUTCOME_LOGGER]


def assert_one_refused_step(before: Samples, after: Samples, logs: pytest.LogCaptureFixture,
                            response: requests.Response, reason: str,
                            client: str = "opendid-client", shown: str = "opendid-client"
                            ) -> None:
    """`response` ended a credential-flow step: one more `reason` failure for `client`, and its
    outcome line (the client `shown`) with the response's request id."""
    assert failure(after, reason, client=client) == failure(before, reason, client=client) + 1
    assert (f"login outcome=failure reason={reason} flow=credential client={shown} "
            f"status={response.status_code} request_id={response.headers['X-Request-Id']}"
            ) in outcome_lines(logs)


@dataclass
class Served:
    url: str
    app: Any

    @property
    def services(self) -> Any:
        return self.app.extensions["opendid"]


@pytest.fixture(scope="module")
def metered(provisioned: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Served]:
    """An OpenDID with `metrics: {token: …}`, in-process over real HTTP."""
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    folder = tmp_path_factory.mktemp("metered")
    config = write_test_config(provisioned, folder / "config.yaml", url, [url + "/cb"],
                               metrics={"token": TOKEN})
    server.app = create_app(config, instance_path=folder / "instance")
    with serve_apps(server):
        yield Served(url, server.app)
    server.app.extensions["opendid"].chain.close()


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def _served(provisioned: dict[str, Any], folder: Path, **overrides: Any) -> Any:
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    folder.mkdir()
    config = write_test_config(provisioned, folder / "config.yaml", url, [url + "/cb"],
                               **overrides)
    server.app = create_app(config, instance_path=folder / "instance")
    return server, url


# -- off, on, protected -------------------------------------------------------------------------


def test_metrics_are_off_by_default(opendid: Opendid):
    response = requests.get(opendid.url + "/metrics", timeout=30)
    assert response.status_code == 404
    assert "opendid_" not in response.text


def test_with_the_token_metrics_are_prometheus_text(metered: Served):
    response = requests.get(metered.url + "/metrics",
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert response.headers["Cache-Control"] == "no-store"
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"opendid_logins", "opendid_policy_refusals", "opendid_credential_verification_seconds",
            "opendid_chain_read_seconds", "opendid_chain_connected", "opendid_tokens_issued",
            "opendid_token_errors"} <= families
    # the scheme is case-insensitive (RFC 7235 §2.1): the same token, another spelling of Bearer
    lower = requests.get(metered.url + "/metrics", headers={"Authorization": f"bearer {TOKEN}"},
                         timeout=30)
    assert lower.status_code == 200


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer wrong-token-0123456789abcdefghijklmnopqrstuv",
    f"Bearer {TOKEN[:-1]}",                   # a prefix
    f"Bearer {TOKEN}x",                       # one character more
    f"Bearer {TOKEN.upper()}",                # another case
    f"Bearer  {TOKEN}",                       # two spaces
    f"Bearer {TOKEN} ",                       # trailing space
    f"{TOKEN}",                               # no scheme
    f"Basic {base64.b64encode(TOKEN.encode()).decode()}",
    f"Token {TOKEN}",
    "Bearer ",
])
def test_a_missing_or_wrong_token_is_refused_without_a_value(metered: Served,
                                                             authorization: str | None):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.get(metered.url + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "opendid_" not in response.text


def test_the_token_is_not_taken_from_the_url_or_a_form(metered: Served):
    in_query = requests.get(metered.url + "/metrics", params={"access_token": TOKEN,
                                                              "token": TOKEN}, timeout=30)
    assert in_query.status_code == 401 and "opendid_" not in in_query.text
    posted = requests.post(metered.url + "/metrics", data={"access_token": TOKEN}, timeout=30)
    assert posted.status_code == 405 and "opendid_" not in posted.text


def test_allow_from_is_the_connections_address_never_a_forwarded_header(provisioned, tmp_path):
    other, other_url = _served(provisioned, tmp_path / "other",
                               metrics={"allowFrom": ["10.0.0.0/8"]})
    local, local_url = _served(provisioned, tmp_path / "local",
                               metrics={"allowFrom": ["127.0.0.1/32"]})
    both, both_url = _served(provisioned, tmp_path / "both",
                             metrics={"allowFrom": ["127.0.0.0/8"], "token": TOKEN})
    try:
        with serve_apps(other, local, both):
            for forwarded in ({}, {"X-Forwarded-For": "10.1.2.3"}, {"X-Real-IP": "10.1.2.3"},
                              {"Forwarded": "for=10.1.2.3"}):
                refused = requests.get(other_url + "/metrics", headers=forwarded, timeout=30)
                assert refused.status_code == 403, forwarded
                assert "opendid_" not in refused.text
            assert requests.get(local_url + "/metrics", timeout=30).status_code == 200
            # both given: both are required
            assert requests.get(both_url + "/metrics", timeout=30).status_code == 401
            assert "opendid_logins" in requests.get(
                both_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30).text
    finally:
        for server in (other, local, both):
            server.app.extensions["opendid"].chain.close()


def test_peer_addresses_are_compared_as_addresses():
    assert peer_allowed("10.1.2.3", ["10.0.0.0/8"])
    assert peer_allowed("::ffff:10.1.2.3", ["10.0.0.0/8"])  # IPv4-mapped IPv6
    assert peer_allowed("::1", ["::1"])
    assert not peer_allowed("::1", ["127.0.0.0/8"])
    assert not peer_allowed("11.1.2.3", ["10.0.0.0/8"])
    assert not peer_allowed("10.1.2.3 ", ["10.0.0.0/8"])
    assert not peer_allowed(None, ["0.0.0.0/0"])
    assert not peer_allowed("", ["0.0.0.0/0"])


@pytest.mark.parametrize(("settings", "problem"), [
    ({}, "protect /metrics"),
    ({"token": None, "allowFrom": []}, "protect /metrics"),
    ({"token": "short"}, "at least 32"),
    ({"token": "x" * 31}, "at least 32"),
    ({"token": "has a space 0123456789abcdefghijklmnop"}, "at least 32"),
    ({"allowFrom": ["10.0.0.300/8"]}, "not an address"),
    ({"allowFrom": ["localhost"]}, "not an address"),
])
def test_an_unprotected_or_malformed_metrics_key_stops_start_up(provisioned, tmp_path,
                                                                settings, problem):
    path = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:1",
                             ["http://127.0.0.1:1/cb"], metrics=settings)
    with pytest.raises(ConfigError, match=problem) as info:
        load_config(path)
    assert "metrics" in str(info.value)


# -- request ids --------------------------------------------------------------------------------


def test_every_response_has_a_request_id_and_a_safe_incoming_one_is_kept(opendid: Opendid):
    url = opendid.url + "/.well-known/openid-configuration"
    fresh = requests.get(url, timeout=30).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    assert requests.get(url, timeout=30).headers["X-Request-Id"] != fresh
    kept = requests.get(url, headers={"X-Request-Id": "edge-4f2a.9_Z"}, timeout=30)
    assert kept.headers["X-Request-Id"] == "edge-4f2a.9_Z"
    for unsafe in ("a" * 65, "two words", "x;y=1", "tab\there", "did:kilt:light:00abc",
                   "%0Aforged", "é"):
        answer = requests.get(url, headers={"X-Request-Id": unsafe.encode().decode("latin-1")},
                              timeout=30)
        replaced = answer.headers["X-Request-Id"]
        assert replaced != unsafe and re.fullmatch(r"[0-9a-f]{32}", replaced), unsafe
    # error answers carry one too
    assert "X-Request-Id" in requests.get(opendid.url + "/metrics", timeout=30).headers


# -- logins: counters, histograms, log lines ----------------------------------------------------


def test_a_login_moves_the_counters_and_histograms_and_logs_one_line(
        metered: Served, wallet: Wallet, chain: ChainClient, logs: pytest.LogCaptureFixture):
    before = scrape(metered.url)
    driver = LoginDriver(metered.url, wallet, chain)
    assert driver.authorize(**CODE).status_code == 302
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204, done.text
    code = result_params(done.headers["Location"])["code"]
    redeemed = driver.token(grant_type="authorization_code", code=code,
                            redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                            client_secret=SECRET)
    assert redeemed.status_code == 200, redeemed.text
    again = driver.token(grant_type="authorization_code", code=code,
                         redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                         client_secret=SECRET)
    assert again.status_code == 400
    after = scrape(metered.url)

    labels = {"flow": "credential", "response_type": "code", "client": "opendid-client"}
    assert success(after, **labels) == success(before, **labels) + 1
    assert value(after, "opendid_credential_verification_seconds_count") == value(
        before, "opendid_credential_verification_seconds_count") + 1
    assert value(after, "opendid_credential_verification_seconds_sum") > value(
        before, "opendid_credential_verification_seconds_sum")
    assert value(after, "opendid_chain_read_seconds_count", result="ok") > value(
        before, "opendid_chain_read_seconds_count", result="ok")
    assert value(after, "opendid_chain_connected") == 1
    issued = {kind: value(after, "opendid_tokens_issued_total", kind=kind, grant=grant)
              - value(before, "opendid_tokens_issued_total", kind=kind, grant=grant)
              for kind, grant in (("code", "authorize"), ("access", "authorization_code"),
                                  ("id_token", "authorization_code"),
                                  ("refresh", "authorization_code"))}
    assert issued == {"code": 1, "access": 1, "id_token": 1, "refresh": 1}
    assert value(after, "opendid_token_errors_total", endpoint="token", error="invalid_grant") \
        == value(before, "opendid_token_errors_total", endpoint="token", error="invalid_grant") + 1

    lines = [line for line in outcome_lines(logs) if "outcome=success" in line]
    assert lines == [f"login outcome=success reason=ok flow=credential client=opendid-client "
                     f"response_type=code request_id={done.headers['X-Request-Id']}"]
    _assert_no_secrets_logged(logs, [code, redeemed.json()["access_token"],
                                     redeemed.json()["refresh_token"],
                                     redeemed.json()["id_token"],
                                     driver.wallet_session.light_did])


def _assert_no_secrets_logged(logs: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    text = "\n".join(r.getMessage() for r in logs.records)
    assert "did:kilt:light" not in text
    for secret in secrets:
        assert secret not in text


def test_a_wrong_challenge_counts_under_its_reason_and_logs_the_request_and_client(
        metered: Served, wallet: Wallet, chain: ChainClient, logs: pytest.LogCaptureFixture):
    before = scrape(metered.url)
    driver = LoginDriver(metered.url, wallet, chain)
    assert driver.authorize(**CODE).status_code == 302
    info = driver.http.get(metered.url + "/api/v1/challenge", timeout=30).json()
    # the wallet answers a challenge the provider never issued
    session = wallet.start_session(info["dAppEncryptionKeyUri"], "0x" + os.urandom(32).hex(),
                                   chain)
    refused = driver.http.post(metered.url + "/api/v1/challenge",
                               json=session.challenge_response,
                               headers={"X-Request-Id": "trace-wrong-challenge"}, timeout=30)
    assert refused.status_code == 401
    assert refused.text == "Invalid challenge: Challenge doesn't match"
    after = scrape(metered.url)
    labels = {"flow": "credential", "response_type": "code", "client": "opendid-client"}
    assert failure(after, "bad_challenge", **labels) == failure(before, "bad_challenge",
                                                                **labels) + 1
    assert success(after) == success(before)
    assert outcome_lines(logs) == [
        "login outcome=failure reason=bad_challenge flow=credential client=opendid-client "
        "status=401 request_id=trace-wrong-challenge"]
    _assert_no_secrets_logged(logs, [session.light_did])


def test_a_credential_that_misses_required_properties_counts_as_requirements_unmet(
        metered: Served, wallet: Wallet, chain: ChainClient, logs: pytest.LogCaptureFixture):
    before = scrape(metered.url)
    driver = LoginDriver(metered.url, wallet, chain)
    assert driver.authorize(**{**CODE, "client_id": "strict-client"}).status_code == 302
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    refused = driver.submit()
    assert refused.status_code == 400 and "required properties" in refused.text
    after = scrape(metered.url)
    assert failure(after, "requirements_unmet", client="strict-client") == failure(
        before, "requirements_unmet", client="strict-client") + 1
    assert value(after, "opendid_credential_verification_seconds_count") == value(
        before, "opendid_credential_verification_seconds_count") + 1
    assert outcome_lines(logs) == [
        "login outcome=failure reason=requirements_unmet flow=credential client=strict-client "
        f"status=400 request_id={refused.headers['X-Request-Id']}"]


def test_a_did_login_and_its_replay_count_and_the_token_is_never_logged(
        metered: Served, wallet: Wallet, chain: ChainClient, logs: pytest.LogCaptureFixture):
    before = scrape(metered.url)
    driver = LoginDriver(metered.url, wallet, chain)
    started = driver.authorize(**{**CODE, "client_id": "did-client", "nonce": "did-nonce"})
    assert started.status_code == 302
    token = driver.did_token("did-nonce")
    assert driver.did_login(token).status_code == 204
    replay = LoginDriver(metered.url, wallet, chain)
    replay.authorize(**{**CODE, "client_id": "did-client", "nonce": "did-nonce"})
    again = replay.did_login(token)
    assert again.status_code == 401
    after = scrape(metered.url)
    assert success(after, flow="did", client="did-client") == success(
        before, flow="did", client="did-client") + 1
    assert failure(after, "jwt_replayed", flow="did") == failure(before, "jwt_replayed",
                                                                 flow="did") + 1
    lines = outcome_lines(logs)
    assert len(lines) == 2
    assert lines[0].startswith("login outcome=success reason=ok flow=did client=did-client ")
    assert lines[1] == ("login outcome=failure reason=jwt_replayed flow=did client=did-client "
                        f"status=401 request_id={again.headers['X-Request-Id']}")
    _assert_no_secrets_logged(logs, [token, token.split(".")[2]])


def test_only_clients_from_the_config_are_named_in_labels(metered: Served, wallet: Wallet,
                                                         chain: ChainClient,
                                                         logs: pytest.LogCaptureFixture):
    """A client added another way (CLI, admin page, etcd) counts as `other`: their number has
    no bound. Its id is still in the log line."""
    config_client = metered.services.clients.get("opendid-client")
    metered.services.clients.upsert(ClientRecord(
        client_id="cli-added-client", client_secret=SECRET, redirect_urls=[OPENDID_REDIRECT],
        requirements=config_client.requirements), "cli")
    before = scrape(metered.url)
    LoginDriver(metered.url, wallet, chain).login(**{**CODE, "client_id": "cli-added-client"})
    after = scrape(metered.url)
    assert success(after, client="other") == success(before, client="other") + 1
    assert not any(dict(labels).get("client") == "cli-added-client" for _, labels in after)
    assert any("client=cli-added-client" in line for line in outcome_lines(logs))


def test_labels_stay_in_their_fixed_sets():
    """Whatever a caller passes, a label takes a known value or `other`: no request can add a
    series, and no DID can become a label."""
    did = "did:kilt:4rrVTLAXgeoE8jo8si571HnqHtd5WmvLuzfH6e1xBsVXsRo7"
    label = metrics.record_login_failure(did, "credential", "code", "none")
    assert label == "other"
    metrics.record_login_success(did, did, "none")
    metrics.record_tokens([did], did)
    metrics.record_token_error(did, did)
    metrics.CHAIN.read(0.01, did)
    body = metrics.exposition()[0].decode()
    assert did not in body
    assert metrics.client_label("cli-client", configured=False) == "other"
    assert metrics.client_label(None, configured=False) == "none"


def test_a_policy_refusal_counts_in_its_own_counter():
    """The policies helper refuses with `LoginError(403, …, reason="policy")`; the error handler
    passes the reason here."""
    before = parse(metrics.exposition()[0].decode())
    assert metrics.record_login_failure("policy", "credential", "code", "opendid-client") \
        == "policy"
    after = parse(metrics.exposition()[0].decode())
    assert value(after, "opendid_policy_refusals_total", client="opendid-client") == value(
        before, "opendid_policy_refusals_total", client="opendid-client") + 1
    assert failure(after, "policy") == failure(before, "policy") + 1


# -- the chain ----------------------------------------------------------------------------------


def test_the_chain_gauge_and_read_results_follow_the_connection(
        provisioned, chain_url, wallet: Wallet, chain: ChainClient, tmp_path,
        logs: pytest.LogCaptureFixture):
    """The chain goes away mid-login: the gauge drops to 0, the read counts as unavailable, the
    login step counts as `chain_unavailable`; it comes back: the gauge is 1 again."""
    proxy = TcpProxy(urlsplit(chain_url).port).start()
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"],
                               metrics={"token": TOKEN})
    client = ChainClient(proxy.url, timeout=2, max_backoff=0, observer=metrics.CHAIN)
    server.app = create_app(config, instance_path=tmp_path / "instance", chain=client)
    try:
        with serve_apps(server):
            driver = LoginDriver(url, wallet, chain)
            envelope = driver.answer(**CODE)
            assert requests.get(url + "/api/v1/health", timeout=30).status_code == 200
            up = scrape(url)
            assert value(up, "opendid_chain_connected") == 1

            proxy.stop()
            down = driver.post_credentials(envelope)
            assert (down.status_code, down.text) == (503, "KILT chain unreachable")
            gone = scrape(url)
            assert value(gone, "opendid_chain_connected") == 0
            assert value(gone, "opendid_chain_read_seconds_count", result="unavailable") > value(
                up, "opendid_chain_read_seconds_count", result="unavailable")
            assert_one_refused_step(up, gone, logs, down, "chain_unavailable")

            proxy.start()
            assert requests.get(url + "/api/v1/health", timeout=30).status_code == 200
            assert value(scrape(url), "opendid_chain_connected") == 1
    finally:
        client.close()
        proxy.stop()


# -- gunicorn: every worker's values, summed ----------------------------------------------------


def _only(server: Gunicorn, worker: int) -> Any:
    """Every other worker stopped (SIGSTOP): `worker` serves each new connection meanwhile."""
    from tests.test_resilience import only

    return only(server, worker)


def _login_on(server: Gunicorn, worker: int, wallet: Wallet, chain: ChainClient) -> None:
    with _only(server, worker):
        driver = LoginDriver(server.url, wallet, chain)
        driver.http.headers["Connection"] = "close"  # a new connection for every request
        driver.login(**CODE)


def _scrape_on(server: Gunicorn, worker: int) -> Samples:
    with _only(server, worker):
        response = requests.get(server.url + "/metrics", timeout=30, headers={
            "Authorization": f"Bearer {TOKEN}", "Connection": "close"})
    assert response.status_code == 200, response.text
    return parse(response.text)


def test_gunicorn_workers_logins_are_summed_and_a_restart_starts_from_zero(
        provisioned, wallet: Wallet, chain: ChainClient, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"],
                               metrics={"token": TOKEN})
    instance = tmp_path / "instance"
    folder = tmp_path / "prometheus"  # made by the master (0700): $PROMETHEUS_MULTIPROC_DIR
    server = Gunicorn(config, instance, port, PROMETHEUS_MULTIPROC_DIR=str(folder)).start()
    try:
        first, second = sorted(server.workers)
        assert folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
        _login_on(server, first, wallet, chain)
        _login_on(server, second, wallet, chain)
        # each worker wrote its own values; whichever worker answers the scrape sums both
        assert {p.name for p in folder.glob("counter_*.db")} >= {
            f"counter_{first}.db", f"counter_{second}.db"}
        for worker in (first, second):
            samples = _scrape_on(server, worker)
            assert success(samples, flow="credential", client="opendid-client") == 2
            assert value(samples, "opendid_credential_verification_seconds_count") == 2
            assert value(samples, "opendid_tokens_issued_total", kind="code") == 2
            assert value(samples, "opendid_chain_connected") == 1  # the minimum over workers
        # the master serves nothing: its live gauge is not in the sum (it would pin the minimum)
        assert server.process is not None
        assert not list(folder.glob(f"gauge_livemin_{server.process.pid}.db"))
        assert {p.name for p in folder.glob("gauge_livemin_*.db")} == {
            f"gauge_livemin_{first}.db", f"gauge_livemin_{second}.db"}

        # a worker dies: its live gauge leaves the sum, its counts stay
        os.kill(first, signal.SIGKILL)
        replacement = int(server.wait_for_log(r"Booting worker with pid: (\d+)").group(1))
        server.workers = {second, replacement}
        assert not (folder / f"gauge_livemin_{first}.db").exists()
        assert success(_scrape_on(server, replacement), client="opendid-client") == 2
    finally:
        server.stop()

    (folder / "stale_from_elsewhere.db").write_bytes(b"")
    server = Gunicorn(config, instance, port, PROMETHEUS_MULTIPROC_DIR=str(folder)).start()
    try:
        assert not (folder / "stale_from_elsewhere.db").exists()
        samples = scrape(server.url)
        assert success(samples) == 0
        assert value(samples, "opendid_credential_verification_seconds_count") == 0
    finally:
        server.stop()


def test_without_a_folder_given_the_workers_share_a_private_temporary_one(provisioned,
                                                                          tmp_path):
    """`opendid serve` without $PROMETHEUS_MULTIPROC_DIR: a fresh 0700 temporary folder (so
    nothing of an earlier run is summed), not in the instance folder, removed at exit."""
    port = free_port()
    config = write_test_config(provisioned, tmp_path / "config.yaml",
                               f"http://127.0.0.1:{port}", ["http://127.0.0.1:1/cb"],
                               metrics={"token": TOKEN})
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    server = Gunicorn(config, tmp_path / "instance", port, workers=1)
    server.env = dict(env, OPENDID_INSTANCE=str(tmp_path / "instance"))
    server.start()
    try:
        # start() waited for a healthy answer: the worker is connected to the chain
        assert value(scrape(server.url), "opendid_chain_connected") == 1
        (worker,) = server.workers
        # the worker's value files are mapped into its memory: that is where they are
        mapped = [line.split()[-1] for line in Path(f"/proc/{worker}/maps").read_text()
                  .splitlines() if line.endswith(".db")]
        folders = {Path(path).parent for path in mapped}
        assert len(folders) == 1, mapped
        folder = folders.pop()
        assert folder.parent == Path(tempfile.gettempdir())
        assert folder.name.startswith("opendid-metrics-")
        assert (folder.stat().st_mode & 0o777) == 0o700
        assert not (tmp_path / "instance" / "metrics").exists()
    finally:
        server.stop()
    assert not folder.exists()


def test_gunicorn_wsgi_app_with_its_conf_file_sums_the_workers_too(provisioned, wallet: Wallet,
                                                                   chain: ChainClient,
                                                                   tmp_path):
    """`gunicorn wsgi:app` reads gunicorn.conf.py, which prepares the folder and names the
    hooks. Its master never connects to the chain, so its gauge (0 since import) would pin
    the minimum at 0 if `pre_fork` did not drop it."""
    port = free_port()
    config = write_test_config(provisioned, tmp_path / "config.yaml", f"http://127.0.0.1:{port}",
                               ["http://127.0.0.1:1/cb"], metrics={"token": TOKEN})
    server = Gunicorn(config, tmp_path / "instance", port, OPENDID_CONFIG=str(config))
    server.args = [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                   "--workers", "2"]
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server.start()
    try:
        first, second = sorted(server.workers)
        _login_on(server, first, wallet, chain)
        _login_on(server, second, wallet, chain)
        for worker in (first, second):
            samples = _scrape_on(server, worker)
            assert success(samples, client="opendid-client") == 2
            assert value(samples, "opendid_chain_connected") == 1
    finally:
        server.stop()


def test_a_login_step_while_redis_is_unreachable_counts_as_state_unavailable(
        provisioned, wallet: Wallet, chain: ChainClient, tmp_path,
        logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Redis fails inside a step (the challenge's one-time entry cannot be taken), then is down
    before a step (its session cannot be read): each 503 is one `state_unavailable` outcome."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from opendid.devtools.redis_server import RedisServer

    with RedisServer(tmp_path / "redis") as redis:
        server = bind_server()
        url = f"http://127.0.0.1:{server.server_port}"
        config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"],
                                   metrics={"token": TOKEN}, store={"url": redis.url})
        server.app = create_app(config, instance_path=tmp_path / "instance")
        with serve_apps(server):
            driver = LoginDriver(url, wallet, chain)
            envelope = driver.answer(**CODE)
            up = scrape(url)

            def connection_lost(*_: Any) -> None:  # as redis-py raises when Redis drops
                raise RedisConnectionError("Connection closed by server.")

            monkeypatch.setattr(server.app.extensions["opendid"].onetime, "take",
                                connection_lost)
            inside = driver.post_credentials(envelope)
            assert (inside.status_code, inside.text) == (503, "State store unreachable")
            monkeypatch.undo()
            counted = scrape(url)
            assert_one_refused_step(up, counted, logs, inside, "state_unavailable")

            redis.stop()
            try:
                before = driver.post_credentials(envelope)
                assert (before.status_code, before.text) == (503, "State store unreachable")
            finally:
                redis.start()
            after = scrape(url)
            assert_one_refused_step(counted, after, logs, before, "state_unavailable",
                                    client=metrics.NONE, shown="-")  # no session: no client
        server.app.extensions["opendid"].chain.close()

"""Clients from etcd (issue 9 §1), against a real etcd (Debian's etcd-server): a record put under
`/opendid/clients/<id>` is a client within seconds, in every worker; an update or delete takes
effect; a bad record is logged and ignored; config.yaml wins over etcd for the same id; etcd
going away keeps the last clients, shows in health, and changes made meanwhile (deletes,
compaction included) are read on reconnecting; username/password and TLS (with domainName and a
client certificate) against a real etcd."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import etcd3gw
import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import SECRET, bind_server, serve_apps, write_test_config
from opendid.application import create_app
from opendid.cli import main
from opendid.config import ConfigError, EtcdConfig, load_config
from opendid.devtools.devchain import free_port
from opendid.devtools.etcd_server import EtcdServer
from opendid.devtools.login_driver import LoginDriver
from opendid.devtools.tcp_proxy import TcpProxy
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.services import compile_policies
from opendid.store.etcd_clients import EtcdClients, etcd_session, parse_endpoint, parse_record
from tests.gunicorn_server import Gunicorn

ETCD_REDIRECT = "http://127.0.0.1:1608/etcd-cb"
OTHER_REDIRECT = "http://127.0.0.1:1608/other-cb"
RP_REDIRECT = "http://127.0.0.1:1608/rp-cb"
WAIT = 30.0  # seconds: a change must show well within this (it shows within a second or so)


def eventually(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll a real condition until it holds (or fail saying what never happened)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def etcd_client(server: EtcdServer) -> etcd3gw.Etcd3Client:
    return etcd3gw.client(host="127.0.0.1", port=server.client_port, api_path="/v3/", timeout=10)


def put(client: etcd3gw.Etcd3Client, client_id: str, record: Any) -> int:
    """Put a record (a dict as JSON, or raw text); the revision it made."""
    value = record if isinstance(record, str) else json.dumps(record)
    answer = client.post(client.get_url("/kv/put"), json={
        "key": base64.b64encode(f"/opendid/clients/{client_id}".encode()).decode(),
        "value": base64.b64encode(value.encode()).decode()})
    return int(answer["header"]["revision"])


def record(provisioned: dict[str, Any], redirect: str = ETCD_REDIRECT, **extra: Any) -> dict:
    """A client as the original's etcd JSON holds it."""
    return {"requirements": [{"cTypeHash": provisioned["ctype"],
                              "trustedAttesters": [provisioned["attester"]["did"]],
                              "requiredProperties": ["Email"]}],
            "redirectUrls": [redirect], "clientSecret": SECRET, **extra}


def code_request(client_id: str, redirect: str = ETCD_REDIRECT) -> dict[str, str]:
    return {"client_id": client_id, "redirect_uri": redirect, "response_type": "code",
            "scope": "openid", "state": "st", "nonce": "nn"}


def authorize(url: str, client_id: str, redirect: str = ETCD_REDIRECT) -> requests.Response:
    return requests.get(url + "/api/v1/authorize", params=code_request(client_id, redirect),
                        allow_redirects=False, timeout=30)


def accepted(url: str, client_id: str, redirect: str = ETCD_REDIRECT) -> bool:
    return authorize(url, client_id, redirect).status_code == 302


def refused(url: str, client_id: str, redirect: str = ETCD_REDIRECT) -> str | None:
    """The error page's text when the authorization request is refused (400), else None."""
    response = authorize(url, client_id, redirect)
    return response.text if response.status_code == 400 else None


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """This module's own etcd: the restart test stops and starts it."""
    with EtcdServer(tmp_path_factory.mktemp("etcd")) as server:
        yield server


@pytest.fixture(scope="module")
def kv(etcd: EtcdServer) -> etcd3gw.Etcd3Client:
    return etcd_client(etcd)


@pytest.fixture(scope="module")
def app_url(provisioned: dict[str, Any], etcd: EtcdServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An OpenDID (in-process, real HTTP) whose config lists the module's etcd."""
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    folder = tmp_path_factory.mktemp("etcd-opendid")
    config = write_test_config(provisioned, folder / "config.yaml", url, [RP_REDIRECT],
                               etcd={"endpoints": [f"http://{etcd.endpoint}"]})
    app = create_app(config, instance_path=folder / "instance")
    server.app = app
    with serve_apps(server):
        yield url
    app.extensions["opendid"].etcd.stop()
    app.extensions["opendid"].chain.close()


def etcd_health(url: str) -> dict[str, Any]:
    response = requests.get(url + "/api/v1/health", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# -- through the whole service -------------------------------------------------------------------


def test_an_etcd_only_client_logs_in_end_to_end(app_url, kv, provisioned, wallet: Wallet,
                                                chain: ChainClient):
    assert refused(app_url, "etcd-login") is not None  # not a client until it is put
    put(kv, "etcd-login", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-login"), "the etcd client is accepted")
    driver = LoginDriver(app_url, wallet, chain)
    params = driver.login(**code_request("etcd-login"))
    response = driver.token(grant_type="authorization_code", code=params["code"],
                            redirect_uri=ETCD_REDIRECT, client_id="etcd-login",
                            client_secret=SECRET)
    assert response.status_code == 200, response.text
    assert {"access_token", "id_token", "refresh_token"} <= set(response.json())
    health = etcd_health(app_url)
    assert health["status"] == "ok" and health["etcd"]["status"] == "connected"
    assert set(health["etcd"]) == {"status", "revision", "clients"}  # no etcd address


def test_an_etcd_clients_login_policy_is_enforced(app_url, kv, provisioned, wallet: Wallet,
                                                  chain: ChainClient, tmp_path):
    """`checksDirectory` in an etcd record: its CEL policy decides, as for a config client."""
    refuse = tmp_path / "refuse"
    refuse.mkdir()
    (refuse / "email.cel").write_text('token.pro.Email.endsWith("@nowhere.example")')
    put(kv, "etcd-policy", record(provisioned, checksDirectory=str(refuse)))
    eventually(lambda: accepted(app_url, "etcd-policy"), "the etcd client is accepted")
    driver = LoginDriver(app_url, wallet, chain)
    driver.authorize(**code_request("etcd-policy"))
    driver.open_session()
    driver.fetch_request()
    refused_login = driver.submit()
    assert refused_login.status_code == 403, refused_login.text
    assert "login policy" in refused_login.text and "Location" not in refused_login.headers


def test_an_update_replaces_the_whole_record(app_url, kv, provisioned):
    put(kv, "etcd-update", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-update"), "the first version is accepted")
    put(kv, "etcd-update", record(provisioned, redirect=OTHER_REDIRECT))
    eventually(lambda: accepted(app_url, "etcd-update", OTHER_REDIRECT), "the new redirect")
    text = refused(app_url, "etcd-update", ETCD_REDIRECT)  # the old one is gone with the put
    assert text is not None and "Invalid redirect_uri" in text


def test_a_deleted_client_is_refused_and_its_code_not_redeemed(app_url, kv, provisioned,
                                                               wallet: Wallet,
                                                               chain: ChainClient):
    put(kv, "etcd-delete", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-delete"), "the etcd client is accepted")
    driver = LoginDriver(app_url, wallet, chain)
    params = driver.login(**code_request("etcd-delete"))
    assert kv.delete("/opendid/clients/etcd-delete")
    text = eventually(lambda: refused(app_url, "etcd-delete"), "the deleted client is refused")
    assert "Invalid client_id" in text
    response = driver.token(grant_type="authorization_code", code=params["code"],
                            redirect_uri=ETCD_REDIRECT, client_id="etcd-delete",
                            client_secret=SECRET)
    # an unknown client, as authlib answers a client_secret_post request for one
    assert (response.status_code, response.json()["error"]) == (400, "invalid_client")


@pytest.mark.parametrize("value, reason", [
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"requirements": [], "redirectUrls": [], "clientSecret": SECRET}),
     "redirectUrls"),
    (json.dumps({"redirectUrls": [ETCD_REDIRECT], "requirements": [{"trustedAttesters": []}],
                 "clientSecret": SECRET}), "cTypeHash"),
    (json.dumps({"redirectUrls": [ETCD_REDIRECT], "idTokenSignedResponseAlg": "none",
                 "clientSecret": SECRET}), "idTokenSignedResponseAlg"),
    (json.dumps({"redirectUrls": [ETCD_REDIRECT], "clientSecret": [SECRET]}), "clientSecret"),
    ('{"redirectUrls": ["' + ETCD_REDIRECT + '"], "clientSecret": "' + SECRET + '"',
     "not JSON"),
    ("\udcff", "not JSON"),
])
def test_a_malformed_record_is_logged_and_ignored(app_url, kv, provisioned, caplog, value,
                                                  reason):
    """A bad put also removes the good record it replaced: what etcd holds is not a client.
    The log says why, never the record's secret."""
    put(kv, "etcd-malformed", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-malformed"), "the good record is accepted")
    caplog.set_level(logging.INFO, logger="opendid.store.etcd_clients")
    kv.put("/opendid/clients/etcd-malformed", value.encode("utf-8", "surrogateescape"))
    text = eventually(lambda: refused(app_url, "etcd-malformed"), "the bad record is no client")
    assert "Invalid client_id" in text
    logged = [r.getMessage() for r in caplog.records if "etcd record ignored" in r.getMessage()]
    assert any("client etcd-malformed" in line and reason in line for line in logged), logged
    assert SECRET not in caplog.text  # the record's secret never reaches the log
    assert etcd_health(app_url)["etcd"]["status"] == "connected"  # the watcher lives on


def test_a_key_that_is_no_client_id_is_ignored(app_url, kv, provisioned, caplog):
    caplog.set_level(logging.ERROR, logger="opendid.store.etcd_clients")
    put(kv, "nested/etcd-nested", record(provisioned))
    put(kv, "etcd-after-nested", record(provisioned))  # the watch delivers changes in order
    eventually(lambda: accepted(app_url, "etcd-after-nested"), "the later record is accepted")
    assert refused(app_url, "nested/etcd-nested") is not None
    assert any("etcd record ignored" in r.getMessage() and "etcd-nested" in r.getMessage()
               for r in caplog.records)


def test_config_yaml_wins_over_etcd_for_the_same_client_id(app_url, kv, provisioned, caplog):
    """Whoever can write to etcd cannot take over a client defined on the host: a record for
    `opendid-client` (config.yaml) with an attacker's redirect URI and secret is ignored."""
    caplog.set_level(logging.WARNING, logger="opendid.store.etcd_clients")
    evil = "https://evil.example.org/cb"
    put(kv, "opendid-client", record(provisioned, redirect=evil, clientSecret="stolen-secret"))
    put(kv, "etcd-after-shadow", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-after-shadow"), "the later record is accepted")
    text = refused(app_url, "opendid-client", evil)
    assert text is not None and "Invalid redirect_uri" in text
    assert accepted(app_url, "opendid-client", "http://127.0.0.1:1606/callback.html")
    assert any("opendid-client ignored: config.yaml defines it" in r.getMessage()
               for r in caplog.records)


def test_etcd_restart_keeps_the_clients_and_picks_up_changes_after(app_url, kv, etcd,
                                                                    provisioned, wallet: Wallet,
                                                                    chain: ChainClient):
    put(kv, "etcd-outage", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-outage"), "the etcd client is accepted")
    before = etcd_health(app_url)["etcd"]["revision"]
    etcd.stop()
    try:
        down = eventually(lambda: etcd_health(app_url)["etcd"]["status"] == "down"
                          and etcd_health(app_url), "health shows etcd down")
        assert down["status"] == "degraded" and down["etcd"]["revision"] >= before
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", down["etcd"]["downSince"])
        assert down["etcd"]["failedAttempts"] >= 1
        # the last clients read keep working: a whole login with the etcd client
        driver = LoginDriver(app_url, wallet, chain)
        params = driver.login(**code_request("etcd-outage"))
        assert driver.token(grant_type="authorization_code", code=params["code"],
                            redirect_uri=ETCD_REDIRECT, client_id="etcd-outage",
                            client_secret=SECRET).status_code == 200
    finally:
        etcd.start()
    kv.delete("/opendid/clients/etcd-outage")
    put(kv, "etcd-after-outage", record(provisioned))
    eventually(lambda: accepted(app_url, "etcd-after-outage"), "a change after the restart")
    assert refused(app_url, "etcd-outage") is not None
    health = etcd_health(app_url)
    assert health["status"] == "ok" and health["etcd"]["status"] == "connected"
    assert "downSince" not in health["etcd"]


# -- the watcher on its own, against real etcd servers -------------------------------------------


def _watcher(**settings: Any) -> EtcdClients:
    clients = EtcdClients(EtcdConfig(**settings), backoff_max=0.5)
    clients.start()
    return clients


def test_deletes_and_compaction_during_a_partition_are_read_on_reconnecting(etcd, kv,
                                                                             provisioned,
                                                                             caplog):
    """The watch cannot resume across a compaction, and a delete made while this process was
    cut off never reaches its watch: the whole prefix is read again on reconnecting. The
    outage is logged once, not once per retry."""
    caplog.set_level(logging.INFO, logger="opendid.store.etcd_clients")
    proxy = TcpProxy(etcd.client_port).start()
    put(kv, "part-stays", record(provisioned))
    put(kv, "part-goes", record(provisioned))
    watcher = _watcher(endpoints=[f"127.0.0.1:{proxy.port}"])
    try:
        assert watcher.get("part-goes") is not None
        proxy.stop()
        eventually(lambda: not watcher.health().connected, "the cut is noticed")
        kv.delete("/opendid/clients/part-goes")
        revision = put(kv, "part-new", record(provisioned))
        kv.post(kv.get_url("/kv/compaction"), json={"revision": revision, "physical": True})
        assert watcher.get("part-goes") is not None  # the last known clients, meanwhile
        eventually(lambda: watcher.health().failures >= 3, "several retries")
        outage = [r for r in caplog.records if "etcd unreachable" in r.getMessage()]
        assert len(outage) == 1 and outage[0].levelno == logging.ERROR
        proxy.start()
        eventually(lambda: watcher.health().connected, "reconnected")
        assert watcher.get("part-goes") is None
        assert watcher.get("part-new") is not None and watcher.get("part-stays") is not None
        put(kv, "part-watched", record(provisioned))  # and the new watch works
        eventually(lambda: watcher.get("part-watched"), "a put after reconnecting")
    finally:
        watcher.stop()
        proxy.stop()


def test_endpoints_are_tried_in_order(etcd, kv, provisioned):
    put(kv, "order-client", record(provisioned))
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    watcher = _watcher(endpoints=[dead, f"http://{etcd.endpoint}"])
    try:
        health = watcher.health()
        assert health.connected and health.endpoint == etcd.endpoint
        assert watcher.get("order-client") is not None
    finally:
        watcher.stop()


def test_username_and_password_authenticate_with_etcd(provisioned, tmp_path, caplog):
    """etcd with auth enabled: the configured user reads and watches; a wrong password reads
    nothing, is logged (without the password) and shown as down."""
    with EtcdServer(tmp_path / "auth-etcd") as server:
        admin = etcd_client(server)
        put(admin, "auth-client", record(provisioned))
        for path, body in (
            ("/auth/user/add", {"name": "root", "password": "root-password-0"}),
            ("/auth/user/grant", {"user": "root", "role": "root"}),
            ("/auth/role/add", {"name": "reader"}),
            ("/auth/role/grant", {"name": "reader", "perm": {
                "permType": "READ", "key": base64.b64encode(b"/opendid/clients/").decode(),
                "range_end": base64.b64encode(b"/opendid/clients0").decode()}}),
            ("/auth/user/add", {"name": "opendid", "password": "reader-password-1"}),
            ("/auth/user/grant", {"user": "opendid", "role": "reader"}),
            ("/auth/enable", {}),
        ):
            admin.post(admin.get_url(path), json=body)
        caplog.set_level(logging.ERROR, logger="opendid.store.etcd_clients")
        anonymous = _watcher(endpoints=[server.endpoint])
        wrong = _watcher(endpoints=[server.endpoint], username="opendid",
                         password="not-the-password-2")
        right = _watcher(endpoints=[server.endpoint], username="opendid",
                         password="reader-password-1")
        try:
            assert not anonymous.health().connected and anonymous.get("auth-client") is None
            assert not wrong.health().connected and wrong.get("auth-client") is None
            assert right.health().connected and right.get("auth-client") is not None
            token = admin.post(admin.get_url("/auth/authenticate"),
                               json={"name": "root", "password": "root-password-0"})["token"]
            admin.session.headers["Authorization"] = token
            put(admin, "auth-later", record(provisioned))
            eventually(lambda: right.get("auth-later"), "a put seen through the user's watch")
        finally:
            for watcher in (anonymous, wrong, right):
                watcher.stop()
        assert any("authentication failed" in r.getMessage() for r in caplog.records)
        assert not any("not-the-password-2" in r.getMessage() for r in caplog.records)


def _certificates(folder: Path, server_name: str) -> dict[str, Path]:
    """A CA, a server certificate for `server_name` only (not 127.0.0.1, so that only
    domainName makes it match) and a client certificate, all made here."""
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def builder(subject: str, public: Any, issuer: str) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)))

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder("test CA", ca_key.public_key(), "test CA")
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    save("ca", ca, ca_key)
    # etcd's gateway connects to its own gRPC port with the server certificate as a client
    # certificate: it needs both usages
    for stem, usages, san in (
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
         server_name),
        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH], None),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = builder(stem, key.public_key(), "test CA").add_extension(
            x509.ExtendedKeyUsage(usages), critical=False)
        if san:
            cert = cert.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]),
                                      critical=False)
        save(stem, cert.sign(ca_key, hashes.SHA256()), key)
    return {stem: folder / stem for stem in ("ca", "server", "client")}


def test_tls_with_domain_name_and_client_certificate(provisioned, tmp_path):
    files = _certificates(tmp_path, "etcd.internal")
    pem = {stem: (Path(f"{path}.pem"), Path(f"{path}.key")) for stem, path in files.items()}
    with EtcdServer(tmp_path / "tls-etcd", cert_file=pem["server"][0], key_file=pem["server"][1],
                    ca_file=pem["ca"][0]) as server:
        tls = {"caCert": str(pem["ca"][0]), "clientCert": str(pem["client"][0]),
               "clientKey": str(pem["client"][1])}
        right = _watcher(endpoints=[server.endpoint], domainName="etcd.internal", **tls)
        # the original's form: the PEM text itself instead of file paths
        as_text = _watcher(endpoints=[f"https://{server.endpoint}"], domainName="etcd.internal",
                           **{k: Path(v).read_text() for k, v in tls.items()})
        # the certificate names etcd.internal, not 127.0.0.1: refused without domainName
        no_name = _watcher(endpoints=[server.endpoint], **tls)
        other_name = _watcher(endpoints=[server.endpoint], domainName="other.internal", **tls)
        # the server requires a client certificate
        no_cert = _watcher(endpoints=[server.endpoint], domainName="etcd.internal",
                           caCert=tls["caCert"])
        try:
            assert right.health().connected and as_text.health().connected
            for refused_watcher in (no_name, other_name, no_cert):
                assert not refused_watcher.health().connected
            writer = etcd3gw.client(host="127.0.0.1", port=server.client_port, protocol="https",
                                    api_path="/v3/", timeout=10,
                                    session=right_session(pem))
            put(writer, "tls-client", record(provisioned))
            eventually(lambda: right.get("tls-client") and as_text.get("tls-client"),
                       "a put seen through the TLS watch")
        finally:
            for watcher in (right, as_text, no_name, other_name, no_cert):
                watcher.stop()


def right_session(pem: dict[str, tuple[Path, Path]]) -> requests.Session:
    """The test's own TLS session to etcd (the certificate's name is checked by the tests
    above; here it only writes)."""
    return etcd_session(EtcdConfig(endpoints=["127.0.0.1:1"], caCert=str(pem["ca"][0]),
                               domainName="etcd.internal", clientCert=str(pem["client"][0]),
                               clientKey=str(pem["client"][1])))


# -- two gunicorn workers ------------------------------------------------------------------------


def test_both_gunicorn_workers_see_a_change(etcd, kv, provisioned, tmp_path):
    port = free_port()
    config = write_test_config(provisioned, tmp_path / "config.yaml", f"http://127.0.0.1:{port}",
                               [RP_REDIRECT], etcd={"endpoints": [etcd.endpoint]})
    server = Gunicorn(config, tmp_path / "instance", port, workers=2).start()
    try:
        revision = put(kv, "gunicorn-client", record(provisioned))
        # each worker reads it: as a watch event, or in its first read if it started later
        pattern = (r"etcd (?:client gunicorn-client put \(revision (\d+), |at \S+ \d+ clients, "
                   r"revision (\d+) \()pid (\d+)\)")
        seen: set[int] = set()
        while seen != server.workers:
            found = server.wait_for_log(pattern, timeout=WAIT)
            pid = int(found.group(3))  # the master read etcd too, before forking
            if pid in server.workers and int(found.group(1) or found.group(2)) >= revision:
                seen.add(pid)
        assert accepted(server.url, "gunicorn-client")
    finally:
        server.stop()


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:2379", (None, "127.0.0.1", 2379)),
    ("http://etcd.internal:2379", ("http", "etcd.internal", 2379)),
    ("https://[::1]:2379/", ("https", "::1", 2379)),
])
def test_endpoints_as_the_original_writes_them(value, expected):
    endpoint = parse_endpoint(value)
    assert (endpoint.scheme, endpoint.host, endpoint.port) == expected


@pytest.mark.parametrize("etcd_key, message", [
    ({"endpoints": []}, "etcd.endpoints"),
    ({"endpoints": ["127.0.0.1"]}, "write host:port"),
    ({"endpoints": ["127.0.0.1:2379/v3"]}, "write host:port"),
    ({"endpoints": ["user@127.0.0.1:2379"]}, "write host:port"),
    ({"endpoints": ["127.0.0.1:2379"], "username": "opendid"}, "both username and password"),
    ({"endpoints": ["127.0.0.1:2379"], "clientKey": "/dev/null"}, "both clientCert and clientKey"),
    ({"endpoints": ["http://127.0.0.1:2379"], "domainName": "etcd.internal"}, "http:// endpoint"),
    ({"endpoints": ["127.0.0.1:2379"], "caCert": "/no/such/ca.pem"}, "etcd.caCert': no such file"),
    ({"endpoints": ["127.0.0.1:2379"], "caCert": __file__}, "not usable PEM"),
    ({"endpoints": ["127.0.0.1:2379"],
      "caCert": "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"},
     "not usable PEM"),
])
def test_bad_etcd_settings_stop_start_up_naming_the_key(provisioned, tmp_path, etcd_key, message):
    path = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:1",
                             [RP_REDIRECT], etcd=etcd_key)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_production_refuses_a_weak_or_any_attester_etcd_record(provisioned):
    good = record(provisioned)
    assert parse_record("c", json.dumps(good).encode(), production=True).client_secret == SECRET
    weak = json.dumps({**good, "clientSecret": "secret"}).encode()
    with pytest.raises(ValueError, match="clientSecret"):
        parse_record("c", weak, production=True)
    anyone = json.dumps({**good, "requirements": [{**good["requirements"][0],
                                                   "trustedAttesters": []}]}).encode()
    with pytest.raises(ValueError, match="trustedAttesters"):
        parse_record("c", anyone, production=True)
    assert parse_record("c", anyone, production=False).requirements[0]["trustedAttesters"] == []


def test_checks_directory_is_kept_for_the_login_policy(provisioned):
    value = json.dumps({**record(provisioned), "checksDirectory": "/etc/opendid/checks"})
    assert parse_record("c", value.encode(), production=False).checks_directory == \
        "/etc/opendid/checks"


def test_a_record_a_check_refuses_is_ignored(etcd, kv, provisioned, caplog, tmp_path):
    """The seam for per-record checks (a login policy compiled when its record arrives): a
    check's ValueError leaves the record out, logged, as a malformed one."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "email.cel").write_text("token.pro.Email.endsWith(")
    caplog.set_level(logging.ERROR, logger="opendid.store.etcd_clients")
    put(kv, "checked-bad", record(provisioned, checksDirectory=str(broken)))
    put(kv, "checked-good", record(provisioned))
    watcher = EtcdClients(EtcdConfig(endpoints=[etcd.endpoint]), checks=[compile_policies])
    watcher.start()
    try:
        assert watcher.get("checked-good") is not None and watcher.get("checked-bad") is None
        assert any("email.cel" in r.getMessage() for r in caplog.records)
    finally:
        watcher.stop()


# -- `opendid clients list` ----------------------------------------------------------------------


def test_clients_list_shows_etcds_clients_with_the_hosts_winning(etcd, kv, provisioned,
                                                                  tmp_path):
    config = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:1608",
                               [RP_REDIRECT], etcd={"endpoints": [f"http://{etcd.endpoint}"]})
    put(kv, "listed-from-etcd", record(provisioned))
    put(kv, "listed-twice", record(provisioned, redirect=OTHER_REDIRECT))
    instance = ["--instance", str(tmp_path / "instance")]
    runner = CliRunner()
    added = runner.invoke(main, ["clients", "add", "listed-twice", "--redirect-url",
                                 ETCD_REDIRECT, *instance])
    assert added.exit_code == 0, added.output

    without_config = runner.invoke(main, ["clients", "list", *instance])
    assert without_config.exit_code == 0, without_config.output
    assert "listed-from-etcd" not in without_config.output

    listed = runner.invoke(main, ["clients", "list", "--config", str(config), *instance])
    assert listed.exit_code == 0, listed.output
    assert ("listed-from-etcd: OpenDID-style, confidential, 1 requirement(s), source etcd"
            in listed.output)
    assert "listed-twice: OpenDID-style, confidential, DID-only login, source cli" \
        in listed.output
    lines = listed.output.splitlines()
    urls = lines[lines.index(next(x for x in lines if x.startswith("listed-twice:"))) + 1]
    assert urls.strip() == ETCD_REDIRECT  # the host's record, not etcd's (OTHER_REDIRECT)


def test_clients_list_says_when_etcd_cannot_be_read(provisioned, tmp_path):
    config = write_test_config(provisioned, tmp_path / "config.yaml", "http://127.0.0.1:1608",
                               [RP_REDIRECT],
                               etcd={"endpoints": [f"http://127.0.0.1:{free_port()}"]})
    instance = ["--instance", str(tmp_path / "instance")]
    runner = CliRunner()
    assert runner.invoke(main, ["clients", "add", "local-one", "--redirect-url", ETCD_REDIRECT,
                                *instance]).exit_code == 0
    listed = runner.invoke(main, ["clients", "list", "--config", str(config), *instance])
    assert listed.exit_code == 1
    assert "local-one: OpenDID-style" in listed.output  # what the host holds is still listed
    assert "etcd not reachable" in listed.output and "not listed" in listed.output

"""Hygiene (security.md row 14): private files in instance/, expired state purged with bounded
work, one outstanding challenge per login, dev mode on loopback."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

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
from opendid.login.service import CREDENTIAL_CHALLENGE, DID_JWT, SESSION_CHALLENGE
from opendid.store.db import Database
from opendid.store.grants import GrantStore
from opendid.store.housekeeping import Housekeeper
from opendid.store.onetime import OneTimeStore

SAMPLE = PROJECT_ROOT.parent / "shared" / "docs" / "config-sample.yaml"
CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}
DID_LOGIN = {**CODE, "client_id": "did-client", "response_type": "id_token",
             "nonce": "hygiene-nonce"}


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    """Mode of the folder and of everything under it, by path relative to it."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(folder: Path) -> None:
    found = modes(folder)
    loose = {name: oct(mode) for name, mode in found.items()
             if mode != (0o700 if (folder / name).is_dir() else 0o600)}
    assert not loose, loose
    # the files the brief names are all there (SQLite's side files included)
    for name in ("opendid.db", "opendid.db-wal", "opendid.db-shm", "sessions.db",
                 "sessions.db-wal", "sessions.db-shm", "session.key", "jwks.json", "init.lock"):
        assert name in found, sorted(found)


def generated_session_key(config: Path) -> Path:
    """Leave `session.sessionKey` empty, so the server generates `instance/session.key`."""
    data = yaml.safe_load(config.read_text())
    data["session"]["sessionKey"] = ""
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def code_login_and_redeem(driver: LoginDriver) -> dict[str, Any]:
    code = driver.login(**CODE)["code"]
    response = driver.token(grant_type="authorization_code", code=code,
                            redirect_uri=OPENDID_REDIRECT, client_id="opendid-client",
                            client_secret=SECRET)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture()
def served(provisioned, tmp_path):
    """Start an app of its own (fresh instance folder) over real HTTP; returns (url, app)."""
    servers = []

    def start(**options: Any) -> tuple[str, Any]:
        server = bind_server()
        url = f"http://127.0.0.1:{server.server_port}"
        folder = tmp_path / f"app-{len(servers)}"
        folder.mkdir()
        config = write_test_config(provisioned, folder / "config.yaml", url, [url + "/cb"])
        app = create_app(generated_session_key(config), instance_path=folder / "instance",
                         **options)
        server.app = app
        start_server(server)
        servers.append(server)
        return url, app

    yield start
    for server in servers:
        server.shutdown()


# -- files ----------------------------------------------------------------------------------------


def test_instance_files_are_0600_in_a_0700_folder_after_a_login(served, wallet, chain):
    with umask(0o022):
        url, app = served()
        driver = LoginDriver(url, wallet, chain)
        code_login_and_redeem(driver)
    assert_private(Path(app.instance_path))


def test_an_older_instance_with_loose_modes_is_tightened(tmp_path, caplog):
    instance = tmp_path / "instance"
    with umask(0o022):
        instance.mkdir(mode=0o755)
        conn = sqlite3.connect(instance / "opendid.db")  # as an older version left it: 0644
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        (instance / "session.key").write_text("0x" + "ab" * 64)
        config = tmp_path / "config.yaml"
        config.write_text(SAMPLE.read_text())
        generated_session_key(config)
        assert modes(instance)["opendid.db"] == 0o644
        caplog.set_level(logging.WARNING)
        app = create_app(config, instance_path=instance)
        conn.close()
    assert "tightened to 0700" in caplog.text
    app.test_client().get("/.well-known/openid-configuration")
    assert_private(instance)


def test_opendid_serve_in_dev_mode_listens_on_loopback_and_writes_private_files(provisioned,
                                                                              wallet, chain,
                                                                              tmp_path):
    """A real `opendid serve --dev` (gunicorn) without --host, started under umask 022."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = generated_session_key(
        write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"]))
    instance = tmp_path / "instance"
    env = dict(os.environ, OPENDID_INSTANCE=str(instance), OPENDID_WALLET=provisioned["wallet"])
    OUTPUT.mkdir(exist_ok=True)
    with umask(0o022), open(OUTPUT / f"serve-dev-{port}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "opendid.cli", "serve", "--config", str(config), "--dev",
             "--port", str(port), "--workers", "1"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "opendid serve exited"
            assert time.monotonic() < deadline, "opendid serve did not answer"
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        assert listening_addresses(port) == {"127.0.0.1"}
        code_login_and_redeem(LoginDriver(url, wallet, chain))
        assert_private(instance)
    finally:
        process.terminate()
        process.wait(timeout=30)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, read from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    if len(address) == 8:
                        found.add(".".join(str(b) for b in bytes.fromhex(address)[::-1]))
                    else:
                        found.add("ipv6:" + address)
    return found


# -- one outstanding challenge per login -----------------------------------------------------------


def owner_rows(opendid, kind: str, key: str) -> list[tuple[str, str]]:
    """The rows of `kind` held by the login that holds `key`."""
    conn = opendid.services.onetime.db.connect()
    owner = conn.execute("SELECT owner FROM one_time WHERE kind = ? AND key = ?",
                         (kind, key)).fetchone()
    assert owner is not None and owner[0] is not None
    return conn.execute("SELECT key, owner FROM one_time WHERE kind = ? AND owner = ?",
                        (kind, owner[0])).fetchall()


def test_asking_for_challenges_in_a_loop_keeps_one_row_per_login(opendid, driver):
    conn = opendid.services.onetime.db.connect()
    driver.authorize(**CODE)
    before = conn.execute("SELECT count(*) FROM one_time").fetchone()[0]
    first = driver.http.get(driver.url("/api/v1/challenge")).json()
    for _ in range(199):
        last = driver.http.get(driver.url("/api/v1/challenge")).json()
    rows = owner_rows(opendid, SESSION_CHALLENGE, last["challenge"])
    assert [key for key, _ in rows] == [last["challenge"]]
    assert conn.execute("SELECT count(*) FROM one_time").fetchone()[0] <= before + 1
    # the older challenge no longer works; the latest does
    stale = driver.wallet.start_session(first["dAppEncryptionKeyUri"], first["challenge"],
                                        driver.chain)
    refused = driver.http.post(driver.url("/api/v1/challenge"), json=stale.challenge_response)
    assert refused.status_code == 401
    assert driver.open_session().status_code == 200

    first_request = driver.fetch_request()[1]
    for _ in range(49):
        driver.fetch_request()
    rows = owner_rows(opendid, CREDENTIAL_CHALLENGE, driver.credential_challenge)
    assert [key for key, _ in rows] == [driver.credential_challenge]
    assert conn.execute("SELECT 1 FROM one_time WHERE key = ?", (first_request,)).fetchone() \
        is None
    assert driver.submit().status_code == 204  # the latest credential challenge logs in


# -- purging expired state ----------------------------------------------------------------------


def leave_state_of_every_kind(url: str, wallet, chain) -> None:
    """Rows of every kind: a redeemed code and its tokens, a pending session challenge, a pending
    credential challenge, a DID-JWT replay entry, and the browser sessions holding them."""
    code_login_and_redeem(LoginDriver(url, wallet, chain))
    pending = LoginDriver(url, wallet, chain)
    pending.authorize(**CODE)
    pending.http.get(pending.url("/api/v1/challenge")).raise_for_status()
    requested = LoginDriver(url, wallet, chain)
    requested.authorize(**CODE)
    assert requested.open_session().status_code == 200
    requested.fetch_request()
    did = LoginDriver(url, wallet, chain)
    did.authorize(**DID_LOGIN)
    assert did.did_login(did.did_token(DID_LOGIN["nonce"])).status_code == 204


def snapshot(app) -> dict[str, set[str]]:
    """The row keys of each kind of expiring state."""
    db = app.extensions["opendid"].onetime.db.connect()
    rows: dict[str, set[str]] = {}
    for kind, key in db.execute("SELECT kind, key FROM one_time"):
        rows.setdefault(kind, set()).add(key)
    rows["codes"] = {r[0] for r in db.execute("SELECT code_hash FROM codes")}
    rows["tokens"] = {r[0] for r in db.execute("SELECT token_hash FROM tokens")}
    with sqlite3.connect(Path(app.instance_path) / "sessions.db") as sessions:
        rows["sessions"] = {r[0] for r in sessions.execute("SELECT id FROM browser_sessions")}
    return rows


def expire_everything(app) -> None:
    """As an attacker's leftovers age: every row's expiry in the past, through the database."""
    db = app.extensions["opendid"].onetime.db.connect()
    for table in ("one_time", "codes", "tokens"):
        db.execute(f"UPDATE {table} SET expires_at = 0")
    with sqlite3.connect(Path(app.instance_path) / "sessions.db") as sessions:
        sessions.execute("UPDATE browser_sessions SET expires_at = 0")


KINDS = {SESSION_CHALLENGE, CREDENTIAL_CHALLENGE, DID_JWT, "codes", "tokens", "sessions"}


def test_expired_rows_of_every_kind_are_purged_and_live_ones_stay(served, wallet, chain):
    url, app = served(purge_interval=0)
    leave_state_of_every_kind(url, wallet, chain)
    old = snapshot(app)
    assert {kind for kind, keys in old.items() if keys} >= KINDS, old
    expire_everything(app)
    leave_state_of_every_kind(url, wallet, chain)  # its requests run the purge
    requests.get(url + "/.well-known/openid-configuration")
    now = snapshot(app)
    for kind in KINDS:
        assert not old[kind] & now.get(kind, set()), f"expired {kind} rows were not purged"
        assert now.get(kind), f"live {kind} rows were purged"


def test_the_purge_runs_at_most_once_per_interval(tmp_path):
    app = create_app(SAMPLE, instance_path=tmp_path / "instance", purge_interval=3600)
    client = app.test_client()
    onetime = app.extensions["opendid"].onetime
    onetime.put(SESSION_CHALLENGE, "0xfirst", {"login": "x"}, ttl=-1)
    client.get("/.well-known/openid-configuration")  # the first request purges
    onetime.put(SESSION_CHALLENGE, "0xlater", {"login": "x"}, ttl=-1)
    client.get("/.well-known/openid-configuration")  # within the interval: no purge
    keys = [r[0] for r in onetime.db.connect().execute("SELECT key FROM one_time")]
    assert keys == ["0xlater"]


def test_one_purge_deletes_a_bounded_batch(tmp_path):
    db = Database(tmp_path / "opendid.db")
    onetime, grants = OneTimeStore(db), GrantStore(db)
    for i in range(130):
        onetime.put(DID_JWT, f"k{i}", None, ttl=-1)
        grants.save_token(f"t{i}", "access", "g", "c", {}, ttl=-1)
    onetime.put(DID_JWT, "live", None, ttl=60)
    keeper = Housekeeper([onetime.purge, grants.purge], interval=0, batch=50)
    assert keeper.maybe_run() == 100
    count = db.connect().execute
    assert count("SELECT count(*) FROM one_time").fetchone()[0] == 81
    assert count("SELECT count(*) FROM tokens").fetchone()[0] == 80
    keeper.maybe_run()
    keeper.maybe_run()
    assert count("SELECT key FROM one_time").fetchall() == [("live",)]
    assert count("SELECT count(*) FROM tokens").fetchone()[0] == 0


def test_a_replay_entry_that_expired_before_its_purge_is_renewed_not_a_replay(tmp_path):
    onetime = OneTimeStore(Database(tmp_path / "opendid.db"))
    assert onetime.remember(DID_JWT, "jwt", ttl=60)
    assert not onetime.remember(DID_JWT, "jwt", ttl=60)
    onetime.db.connect().execute("UPDATE one_time SET expires_at = 0")
    assert onetime.remember(DID_JWT, "jwt", ttl=60)
    assert not onetime.remember(DID_JWT, "jwt", ttl=60)

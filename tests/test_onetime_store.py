"""Single-use values (security.md rows 3 and 6): taken once, never after expiry.

The store is tested on a real SQLite database, and its expiry check is tested where a login
reaches it: the credential challenge is consumed by `take` alone (no `peek` before it)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import OPENDID_REDIRECT
from opendid.devtools.login_driver import LoginDriver
from opendid.store.db import Database
from opendid.store.onetime import OneTimeStore

CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}


def _store(tmp_path: Path) -> OneTimeStore:
    return OneTimeStore(Database(tmp_path / "state.sqlite3"))


def _expire(store: OneTimeStore, key: str) -> None:
    store.db.connect().execute("UPDATE one_time SET expires_at = ? WHERE key = ?",
                               (time.time() - 1, key))


def test_a_value_is_taken_once_and_peeking_does_not_take_it(tmp_path):
    store = _store(tmp_path)
    store.put("challenge", "0xab", {"login": "L"}, 60)
    assert store.peek("challenge", "0xab") == {"login": "L"}
    assert store.peek("challenge", "0xab") == {"login": "L"}
    assert store.take("challenge", "0xab") == {"login": "L"}
    assert store.take("challenge", "0xab") is None
    assert store.peek("challenge", "0xab") is None


def test_a_value_is_kept_per_kind(tmp_path):
    store = _store(tmp_path)
    store.put("session", "0xab", {"login": "L"}, 60)
    assert store.take("credential", "0xab") is None
    assert store.take("session", "0xab") == {"login": "L"}


def test_an_expired_value_is_neither_peeked_nor_taken(tmp_path):
    store = _store(tmp_path)
    store.put("challenge", "0xab", {"login": "L"}, 60)
    _expire(store, "0xab")
    assert store.peek("challenge", "0xab") is None
    assert store.take("challenge", "0xab") is None


def test_a_remembered_key_is_refused_the_second_time_until_it_expires(tmp_path):
    store = _store(tmp_path)
    assert store.remember("jwt", "digest", 60)
    assert not store.remember("jwt", "digest", 60)
    assert store.peek("jwt", "digest") is None  # remembered, with a JSON null as its value
    _expire(store, "digest")
    assert store.remember("jwt", "digest", 60)  # the expired record was purged first


def test_purge_removes_only_expired_values(tmp_path):
    store = _store(tmp_path)
    store.put("challenge", "old", 1, 60)
    store.put("challenge", "new", 2, 60)
    _expire(store, "old")
    store.purge()
    keys = [row[0] for row in store.db.connect().execute("SELECT key FROM one_time")]
    assert keys == ["new"]


def test_an_expired_credential_challenge_is_refused(driver: LoginDriver, opendid):
    driver.authorize(**CODE)
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    assert driver.credential_challenge is not None
    _expire(opendid.services.onetime, driver.credential_challenge)
    response = driver.submit()
    assert response.status_code == 400
    assert "challenge" in response.text
    assert "Location" not in response.headers


def test_a_fresh_credential_challenge_is_accepted(driver: LoginDriver):
    """The control for the test above: the same steps without the expiry log in."""
    driver.authorize(**CODE)
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    assert driver.submit().status_code == 204


def test_a_purge_without_a_limit_deletes_at_most_a_thousand(tmp_path):
    store = _store(tmp_path)
    for index in range(1001):
        store.put("challenge", f"k{index}", {}, 60)
    store.db.connect().execute("UPDATE one_time SET expires_at = 0")
    assert store.purge() == 1000
    assert store.purge() == 1

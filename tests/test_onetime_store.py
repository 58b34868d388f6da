"""Single-use values (security.md rows 3 and 6): taken once, never after expiry.

Each store (SQLite, the embedded default; Redis, for several instances) is tested on the real
thing, and the expiry check is tested where a login reaches it: the credential challenge is
consumed by `take` alone (no `peek` before it)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from conftest import OPENDID_REDIRECT, expire_one_time
from opendid.devtools.login_driver import LoginDriver
from opendid.login.service import CREDENTIAL_CHALLENGE
from opendid.store.db import Database
from opendid.store.onetime import OneTimeStore
from opendid.store.redis_onetime import RedisOneTimeStore

CODE = {"client_id": "opendid-client", "redirect_uri": OPENDID_REDIRECT, "response_type": "code",
        "scope": "openid", "state": "s", "nonce": "n"}


def _store(tmp_path: Path) -> OneTimeStore:
    return OneTimeStore(Database(tmp_path / "state.sqlite3"))


def _expire(store: OneTimeStore, key: str) -> None:
    store.db.connect().execute("UPDATE one_time SET expires_at = ? WHERE key = ?",
                               (time.time() - 1, key))


Store = OneTimeStore | RedisOneTimeStore


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path: Path) -> Iterator[tuple[Store, Callable[[str, str], Any]]]:
    """Each store with a way to expire one of its values (as time would)."""
    if request.param == "sqlite":
        store = _store(tmp_path)
        yield store, lambda kind, key: _expire(store, key)
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    redis_store = RedisOneTimeStore(client, prefix=f"test-{uuid.uuid4().hex}:")
    yield redis_store, lambda kind, key: client.pexpireat(redis_store._key(kind, key), 1)
    client.close()


def test_a_value_is_taken_once_and_peeking_does_not_take_it(backend):
    store, _ = backend
    store.put("challenge", "0xab", {"login": "L"}, 60)
    assert store.peek("challenge", "0xab") == {"login": "L"}
    assert store.peek("challenge", "0xab") == {"login": "L"}
    assert store.take("challenge", "0xab") == {"login": "L"}
    assert store.take("challenge", "0xab") is None
    assert store.peek("challenge", "0xab") is None


def test_a_value_is_kept_per_kind(backend):
    store, _ = backend
    store.put("session", "0xab", {"login": "L"}, 60)
    assert store.take("credential", "0xab") is None
    assert store.take("session", "0xab") == {"login": "L"}


def test_an_expired_value_is_neither_peeked_nor_taken(backend):
    store, expire = backend
    store.put("challenge", "0xab", {"login": "L"}, 60)
    expire("challenge", "0xab")
    assert store.peek("challenge", "0xab") is None
    assert store.take("challenge", "0xab") is None


def test_a_remembered_key_is_refused_the_second_time_until_it_expires(backend):
    store, expire = backend
    assert store.remember("jwt", "digest", 60)
    assert not store.remember("jwt", "digest", 60)
    assert store.peek("jwt", "digest") is None  # remembered, with a JSON null as its value
    expire("jwt", "digest")
    assert store.remember("jwt", "digest", 60)  # the expired record does not count


def test_an_owners_new_value_replaces_its_previous_one(backend):
    """One challenge per login however often the page asks: the older one is gone."""
    store, _ = backend
    store.put("challenge", "first", {"login": "L"}, 60, owner="L")
    store.put("challenge", "other", {"login": "M"}, 60, owner="M")
    store.put("challenge", "second", {"login": "L"}, 60, owner="L")
    assert store.take("challenge", "first") is None
    assert store.take("challenge", "second") == {"login": "L"}
    assert store.take("challenge", "other") == {"login": "M"}


def test_of_racing_takes_and_remembers_exactly_one_wins(backend):
    store, _ = backend
    store.put("challenge", "raced", {"login": "L"}, 60)
    start = threading.Barrier(8)

    def take(_: int) -> Any:
        start.wait()
        return store.take("challenge", "raced")

    def remember(_: int) -> bool:
        start.wait()
        return store.remember("jwt", "raced", 60)

    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(take, range(8)))
        remembered = list(pool.map(remember, range(8)))
    assert [t for t in taken if t is not None] == [{"login": "L"}]
    assert remembered.count(True) == 1


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
    expire_one_time(opendid.services, CREDENTIAL_CHALLENGE, driver.credential_challenge)
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

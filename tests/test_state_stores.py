"""The grant store's rules, pinned through its interface on each backend: SQLite (embedded
default) and Redis (several instances). test_grant_store.py pins the SQLite store's rows; this
file holds both to the same behaviour, on a real database and a real redis-server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from opendid.store.db import Database
from opendid.store.grants import GrantStore, NewToken, digest
from opendid.store.redis_grants import RedisGrantStore

Store = GrantStore | RedisGrantStore
THREADS = 8


class Backend:
    """A store, and a way to make one of its codes or tokens expire (as time would)."""

    def __init__(self, store: Store, expire: Callable[[str, str], None]) -> None:
        self.store, self.expire = store, expire


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        store = GrantStore(Database(tmp_path / "state.sqlite3"))

        def expire_row(kind: str, value: str) -> None:
            table, column = ("codes", "code_hash") if kind == "code" else ("tokens", "token_hash")
            store.db.connect().execute(f"UPDATE {table} SET expires_at = ? WHERE {column} = ?",
                                       (time.time() - 1, digest(value)))

        yield Backend(store, expire_row)
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    redis_store = RedisGrantStore(client, prefix=f"test-{uuid.uuid4().hex}:")

    def expire_key(kind: str, value: str) -> None:
        client.hset(f"{redis_store.prefix}{kind}:{digest(value)}", "expires_at", time.time() - 1)

    yield Backend(redis_store, expire_key)
    client.close()


def _tokens(*names: str, kind: str = "access") -> list[NewToken]:
    return [NewToken(name, kind, {"identity": {"did": "did:kilt:x"}, "scope": "openid"}, 60)
            for name in names]


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_code_is_found_by_its_exact_value_and_redeemed_once(backend: Backend):
    store = backend.store
    store.save_code("AbC-code", "G", {"nonce": "n"}, 60)
    assert store.find_code("AbC-code") == ("G", {"nonce": "n"}, False)
    for other in ("abc-code", "AbC-code ", "AbC-cod"):
        assert store.find_code(other) is None
    assert not store.redeem_code("AbC-code", "other-grant", "c", _tokens("a0"))
    assert store.redeem_code("AbC-code", "G", "c", _tokens("a1"))
    assert store.find_code("AbC-code") == ("G", {"nonce": "n"}, True)
    assert not store.redeem_code("AbC-code", "G", "c", _tokens("a2"))
    assert store.active_token("a1", "access") is not None
    assert store.active_token("a0", "access") is None
    assert store.active_token("a2", "access") is None


def test_an_expired_code_is_neither_found_nor_redeemed(backend: Backend):
    backend.store.save_code("code", "G", {}, 60)
    backend.expire("code", "code")
    assert backend.store.find_code("code") is None
    assert not backend.store.redeem_code("code", "G", "c", _tokens("a"))
    assert backend.store.active_token("a", "access") is None


def test_racing_redemptions_have_exactly_one_winner(backend: Backend):
    store = backend.store
    store.save_code("raced", "G", {}, 60)
    won = _race([lambda i=i: store.redeem_code("raced", "G", "c", _tokens(f"t{i}"))
                 for i in range(THREADS)])
    assert won.count(True) == 1
    live = [i for i in range(THREADS) if store.active_token(f"t{i}", "access")]
    assert live == [won.index(True)]


def test_a_token_is_found_only_with_its_kind_until_it_expires(backend: Backend):
    store = backend.store
    assert store.save_token("tok", "access", "G", "c", {"scope": "openid"}, 60)
    assert store.active_token("tok", "access") == ("G", "c", {"scope": "openid"})
    assert store.active_token("tok", "refresh") is None
    assert store.active_token("TOK", "access") is None
    backend.expire("token", "tok")
    assert store.active_token("tok", "access") is None
    assert store.find_token("tok", "access") is None


def test_rotation_happens_once_and_a_rotated_token_is_still_found(backend: Backend):
    store = backend.store
    store.save_token("r1", "refresh", "G", "c", {}, 60)
    assert not store.rotate("r1", "access", "G", "c", _tokens("x"))  # wrong kind
    assert not store.rotate("r1", "refresh", "H", "c", _tokens("y"))  # wrong grant
    assert store.rotate("r1", "refresh", "G", "c", _tokens("a2") + _tokens("r2", kind="refresh"))
    assert store.active_token("r1", "refresh") is None
    assert store.find_token("r1", "refresh") is not None  # so a reuse can be detected
    assert not store.rotate("r1", "refresh", "G", "c", _tokens("a3"))
    assert store.active_token("r2", "refresh") is not None
    assert store.active_token("x", "access") is None and store.active_token("y", "access") is None


def test_racing_rotations_have_exactly_one_winner(backend: Backend):
    store = backend.store
    store.save_token("r", "refresh", "G", "c", {}, 60)
    won = _race([lambda i=i: store.rotate("r", "refresh", "G", "c", _tokens(f"n{i}"))
                 for i in range(THREADS)])
    assert won.count(True) == 1
    assert [i for i in range(THREADS) if store.active_token(f"n{i}", "access")] == [
        won.index(True)]


def test_revoking_a_grant_revokes_its_live_tokens_and_refuses_later_ones(backend: Backend):
    store = backend.store
    store.save_token("a", "access", "G", "c", {}, 60)
    store.save_token("r", "refresh", "G", "c", {}, 60)
    store.save_token("other", "access", "H", "c", {}, 60)
    store.save_code("code", "G", {}, 60)
    assert store.revoke_grant("G") == 2
    assert store.revoke_grant("G") == 0
    assert store.active_token("a", "access") is None
    assert store.find_token("r", "refresh") is None
    assert store.active_token("other", "access") is not None
    assert not store.save_token("late", "access", "G", "c", {}, 60)
    assert not store.redeem_code("code", "G", "c", _tokens("bought"))
    assert store.find_code("code") == ("G", {}, False)  # refused, and not used up
    assert store.active_token("late", "access") is None


def test_a_rotation_racing_a_revocation_never_leaves_a_live_token(backend: Backend):
    store = backend.store
    for round_ in range(20):
        grant = f"G{round_}"
        store.save_token(f"r{round_}", "refresh", grant, "c", {}, 60)
        _race([lambda g=grant, r=round_: store.rotate(f"r{r}", "refresh", g, "c",
                                                       _tokens(f"new{r}")),
               lambda g=grant: store.revoke_grant(g)])
        assert store.active_token(f"new{round_}", "access") is None
        assert store.active_token(f"r{round_}", "refresh") is None

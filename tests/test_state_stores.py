"""The state stores' rules (grants, SSO sessions), pinned through their interfaces on each
backend: SQLite (embedded default) and Redis (several instances). test_grant_store.py and
test_sso.py pin the SQLite rows; this file holds both backends to the same behaviour, on a real
database and a real redis-server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from opendid.login.identity import Identity
from opendid.store.db import Database
from opendid.store.grants import GrantStore, NewToken, digest
from opendid.store.redis_grants import RedisGrantStore
from opendid.store.redis_sso import RedisSsoStore
from opendid.store.sso import SsoStore
from tests.races import race

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
    won = race([lambda i=i: store.redeem_code("raced", "G", "c", _tokens(f"t{i}"))
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
    won = race([lambda i=i: store.rotate("r", "refresh", "G", "c", _tokens(f"n{i}"))
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
        race([lambda g=grant, r=round_: store.rotate(f"r{r}", "refresh", g, "c",
                                                       _tokens(f"new{r}")),
               lambda g=grant: store.revoke_grant(g)])
        assert store.active_token(f"new{round_}", "access") is None
        assert store.active_token(f"r{round_}", "refresh") is None


def test_a_tokens_record_and_revoking_one_token(backend: Backend):
    store = backend.store
    before = time.time()
    store.save_token("acc", "access", "G", "c", {"scope": "openid"}, 60)
    store.save_token("ref", "refresh", "G", "c", {}, 60)
    record = store.record("acc")
    assert (record.kind, record.grant_id, record.client_id, record.data, record.state) == (
        "access", "G", "c", {"scope": "openid"}, 0)
    assert before <= record.issued_at <= time.time() <= record.expires_at
    assert store.record("ACC") is None
    assert not store.revoke_token("acc", "other-client")
    assert store.record("acc") is not None
    assert store.revoke_token("acc", "c")
    assert not store.revoke_token("acc", "c")
    assert store.record("acc") is None and store.active_token("acc", "access") is None
    assert store.active_token("ref", "refresh") is not None  # the grant lives on
    assert store.rotate("ref", "refresh", "G", "c", _tokens("acc2"))
    assert store.record("ref") is None
    assert store.record("ref", with_rotated=True).state == 2


# -- provider (SSO) sessions ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def sso_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        yield SsoStore(Database(tmp_path / "state.sqlite3"))
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisSsoStore(client, prefix=f"test-{uuid.uuid4().hex}:")
    client.close()


def _identity(did: str = "did:kilt:alice", auth_time: int | None = None) -> Identity:
    return Identity(did, "alice", {"Email": "a@example.org"},
                    int(time.time()) if auth_time is None else auth_time, "0xroot")


def test_an_sso_session_is_found_by_its_exact_id_and_ended_once(sso_store):
    first = sso_store.login(None, "app", "fp", _identity(), 3600)
    found = sso_store.find(first)
    assert found is not None and found.did == "did:kilt:alice"
    assert [s.client_id for s in found.satisfied] == ["app"]
    for other in (first.upper(), first[:-1], first + "A", " " + first, None, ""):
        assert sso_store.find(other) is None
    ended = race([lambda: sso_store.end(first) for _ in range(THREADS)])
    assert [e.did for e in ended if e is not None] == ["did:kilt:alice"]
    assert sso_store.find(first) is None


def test_a_new_login_takes_the_session_over_under_a_new_id(sso_store):
    first = sso_store.login(None, "app", "fp-a", _identity(), 3600)
    second = sso_store.login(first, "other", "fp-b", _identity(), 3600)
    assert second != first and sso_store.find(first) is None
    kept = sso_store.find(second)
    assert {s.fingerprint for s in kept.satisfied} == {"fp-a", "fp-b"}
    # another DID on this browser: the first DID's credentials are not carried over
    third = sso_store.login(second, "app", "fp-c", _identity("did:kilt:bob"), 3600)
    taken = sso_store.find(third)
    assert taken.did == "did:kilt:bob" and [s.fingerprint for s in taken.satisfied] == ["fp-c"]


def test_an_sso_session_expires_at_login_time_plus_lifetime(sso_store):
    old = sso_store.login(None, "app", "fp", _identity(auth_time=int(time.time()) - 100), 99)
    assert sso_store.find(old) is None
    live = sso_store.login(None, "app", "fp", _identity(), 3600)
    assert sso_store.find(live).expires_at == pytest.approx(time.time() + 3600, abs=5)

"""The grant store on a real SQLite database (no chain, no server): codes and tokens by hash,
single-use code redemption, refresh rotation, grant revocation and purge.

The HTTP tests (test_refresh.py, test_oidc.py) pin the same rules end to end; these pin each
check of the store itself, including the races it promises to settle (one winner)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from opendid.store.db import Database
from opendid.store.grants import LIVE, REVOKED, ROTATED, GrantStore, NewToken
from tests.races import race

THREADS = 8


def _store(tmp_path: Path) -> GrantStore:
    return GrantStore(Database(tmp_path / "state.sqlite3"))


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _expire(store: GrantStore, table: str, column: str, value: str, ago: float = 1) -> None:
    store.db.connect().execute(f"UPDATE {table} SET expires_at = ? WHERE {column} = ?",
                               (time.time() - ago, _sha(value)))


def _token_row(store: GrantStore, token: str) -> tuple[Any, ...] | None:
    return store.db.connect().execute(
        "SELECT kind, grant_id, client_id, data, expires_at, revoked FROM tokens "
        "WHERE token_hash = ?", (_sha(token),)).fetchone()


def _spellings(value: str) -> list[str]:
    return [value.upper(), value + " ", " " + value, value + "=", value[:-1]]


# -- codes --------------------------------------------------------------------------------------

def test_a_code_is_stored_by_hash_and_found_with_its_grant_and_data(tmp_path):
    store = _store(tmp_path)
    before = time.time()
    store.save_code("code-1", "G", {"nonce": "n", "scope": "openid"}, 60)
    after = time.time()
    assert store.find_code("code-1") == ("G", {"nonce": "n", "scope": "openid"}, False)
    row = store.db.connect().execute(
        "SELECT code_hash, grant_id, expires_at, used_at FROM codes").fetchone()
    assert row[0] == _sha("code-1") and row[1] == "G" and row[3] is None
    assert before + 60 <= row[2] <= after + 60
    assert store.find_code("code-2") is None


def test_a_code_has_one_spelling(tmp_path):
    store = _store(tmp_path)
    store.save_code("AbC-code", "G", {}, 60)
    for other in _spellings("AbC-code"):
        assert store.find_code(other) is None
        assert store.redeem_code(other, "G", "c", []) is False
    assert store.find_code("AbC-code") == ("G", {}, False)


def test_an_expired_code_is_neither_found_nor_redeemed(tmp_path):
    store = _store(tmp_path)
    store.save_code("code", "G", {}, 60)
    _expire(store, "codes", "code_hash", "code")
    assert store.find_code("code") is None
    assert store.redeem_code("code", "G", "c", [NewToken("at", "access", {}, 60)]) is False
    assert _token_row(store, "at") is None


def test_a_code_is_redeemed_once_and_its_tokens_saved_with_it(tmp_path):
    store = _store(tmp_path)
    store.save_code("code", "G", {"k": 1}, 60)
    before = time.time()
    assert store.redeem_code("code", "G", "client", [
        NewToken("at", "access", {"a": 1}, 60), NewToken("rt", "refresh", {"r": 2}, 600)])
    after = time.time()
    assert store.find_code("code") == ("G", {"k": 1}, True)
    used_at = store.db.connect().execute("SELECT used_at FROM codes").fetchone()[0]
    assert before <= used_at <= after
    assert store.active_token("at", "access") == ("G", "client", {"a": 1})
    assert store.active_token("rt", "refresh") == ("G", "client", {"r": 2})
    kind, grant, client, _, expires_at, revoked = _token_row(store, "rt")
    assert (kind, grant, client, revoked) == ("refresh", "G", "client", LIVE)
    assert before + 600 <= expires_at <= after + 600
    assert store.redeem_code("code", "G", "client", [NewToken("at2", "access", {}, 60)]) is False
    assert _token_row(store, "at2") is None


def test_a_code_is_redeemed_only_for_its_own_grant(tmp_path):
    store = _store(tmp_path)
    store.save_code("code", "G", {}, 60)
    assert store.redeem_code("code", "other", "c", [NewToken("at", "access", {}, 60)]) is False
    assert _token_row(store, "at") is None
    assert store.find_code("code") == ("G", {}, False)
    assert store.redeem_code("code", "G", "c", [NewToken("at", "access", {}, 60)]) is True


def test_a_code_of_a_revoked_grant_buys_nothing_and_stays_unused(tmp_path):
    """The tokens are refused, so the whole redemption rolls back (the code is not marked)."""
    store = _store(tmp_path)
    store.save_code("code", "G", {}, 60)
    store.revoke_grant("G")
    assert store.redeem_code("code", "G", "c", [NewToken("at", "access", {}, 60)]) is False
    assert store.find_code("code") == ("G", {}, False)
    assert _token_row(store, "at") is None


def test_racing_redemptions_of_one_code_have_exactly_one_winner(tmp_path):
    store = _store(tmp_path)
    store.save_code("code", "G", {}, 60)
    calls = [lambda i=i: store.redeem_code("code", "G", "c", [
        NewToken(f"at{i}", "access", {}, 60), NewToken(f"rt{i}", "refresh", {}, 600)])
        for i in range(THREADS)]
    results = race(calls)
    assert results.count(True) == 1
    winner = results.index(True)
    rows = store.db.connect().execute("SELECT token_hash FROM tokens").fetchall()
    assert sorted(r[0] for r in rows) == sorted([_sha(f"at{winner}"), _sha(f"rt{winner}")])


# -- tokens -------------------------------------------------------------------------------------

def test_a_token_is_stored_by_hash_and_found_only_with_its_kind(tmp_path):
    store = _store(tmp_path)
    before = time.time()
    assert store.save_token("tok", "access", "G", "client", {"sub": "x"}, 60) is True
    after = time.time()
    kind, grant, client, data, expires_at, revoked = _token_row(store, "tok")
    assert (kind, grant, client, data, revoked) == ("access", "G", "client", '{"sub": "x"}', LIVE)
    assert before + 60 <= expires_at <= after + 60
    assert store.active_token("tok", "access") == ("G", "client", {"sub": "x"})
    assert store.active_token("tok", "refresh") is None
    found = store.find_token("tok", "access")
    assert found is not None
    assert (found.grant_id, found.client_id, found.data) == ("G", "client", {"sub": "x"})
    assert store.find_token("tok", "refresh") is None
    assert store.active_token("other", "access") is None
    assert store.find_token("other", "access") is None


def test_a_token_has_one_spelling(tmp_path):
    store = _store(tmp_path)
    store.save_token("Tok-En", "refresh", "G", "c", {}, 60)
    for other in _spellings("Tok-En"):
        assert store.active_token(other, "refresh") is None
        assert store.find_token(other, "refresh") is None
        assert store.rotate(other, "refresh", "G", "c", [NewToken("n", "refresh", {}, 60)]) is False
    assert _token_row(store, "n") is None


def test_an_expired_token_is_neither_active_found_nor_rotated(tmp_path):
    store = _store(tmp_path)
    store.save_token("tok", "refresh", "G", "c", {}, 600)
    _expire(store, "tokens", "token_hash", "tok")
    assert store.active_token("tok", "refresh") is None
    assert store.find_token("tok", "refresh") is None
    assert store.rotate("tok", "refresh", "G", "c", [NewToken("n", "refresh", {}, 60)]) is False
    assert _token_row(store, "n") is None


def test_a_token_of_a_revoked_grant_is_never_saved_live(tmp_path):
    store = _store(tmp_path)
    assert store.revoke_grant("G") == 0
    assert store.save_token("tok", "access", "G", "c", {}, 60) is False
    assert _token_row(store, "tok") is None
    assert store.save_token("tok", "access", "H", "c", {}, 60) is True


# -- rotation -----------------------------------------------------------------------------------

def test_rotation_marks_the_old_token_rotated_and_saves_the_new_ones(tmp_path):
    store = _store(tmp_path)
    store.save_token("old", "refresh", "G", "c", {"n": 0}, 600)
    before = time.time()
    assert store.rotate("old", "refresh", "G", "c", [
        NewToken("at", "access", {"n": 1}, 60), NewToken("new", "refresh", {"n": 2}, 600)])
    after = time.time()
    assert _token_row(store, "old")[5] == ROTATED
    assert store.active_token("old", "refresh") is None
    found = store.find_token("old", "refresh")  # still found: presenting it again is a reuse
    assert found is not None and found.grant_id == "G" and found.data == {"n": 0}
    assert store.active_token("at", "access") == ("G", "c", {"n": 1})
    assert store.active_token("new", "refresh") == ("G", "c", {"n": 2})
    assert before + 600 <= _token_row(store, "new")[4] <= after + 600
    # a second rotation of the same token is refused and saves nothing
    assert store.rotate("old", "refresh", "G", "c", [NewToken("x", "refresh", {}, 60)]) is False
    assert _token_row(store, "x") is None


def test_rotation_needs_the_tokens_kind_and_grant(tmp_path):
    store = _store(tmp_path)
    store.save_token("old", "refresh", "G", "c", {}, 600)
    assert not store.rotate("old", "access", "G", "c", [NewToken("x", "refresh", {}, 60)])
    assert not store.rotate("old", "refresh", "H", "c", [NewToken("y", "refresh", {}, 60)])
    assert _token_row(store, "x") is None and _token_row(store, "y") is None
    assert _token_row(store, "old")[5] == LIVE
    assert store.rotate("old", "refresh", "G", "c", [NewToken("z", "refresh", {}, 60)])


def test_rotation_into_a_revoked_grant_rolls_back(tmp_path):
    """The new tokens are refused, so the old one stays live (not marked rotated)."""
    store = _store(tmp_path)
    store.save_token("old", "refresh", "G", "c", {}, 600)
    store.db.connect().execute("INSERT INTO revoked_grants VALUES ('G', ?)", (time.time() + 60,))
    assert store.rotate("old", "refresh", "G", "c", [NewToken("new", "refresh", {}, 60)]) is False
    assert _token_row(store, "old")[5] == LIVE
    assert _token_row(store, "new") is None


def test_racing_rotations_of_one_token_have_exactly_one_winner(tmp_path):
    store = _store(tmp_path)
    store.save_token("old", "refresh", "G", "c", {}, 600)
    calls = [lambda i=i: store.rotate("old", "refresh", "G", "c",
                                      [NewToken(f"new{i}", "refresh", {}, 600)])
             for i in range(THREADS)]
    results = race(calls)
    assert results.count(True) == 1
    live = store.db.connect().execute(
        "SELECT token_hash FROM tokens WHERE revoked = ?", (LIVE,)).fetchall()
    assert live == [(_sha(f"new{results.index(True)}"),)]


def test_reuse_of_a_rotated_token_revokes_the_whole_grant(tmp_path):
    """What the token endpoint does on reuse: the rotated token is still found, and revoking its
    grant kills every live token of it, and any token saved for it later."""
    store = _store(tmp_path)
    store.save_token("old", "refresh", "G", "c", {}, 600)
    store.save_token("other-grant", "refresh", "H", "c", {}, 600)
    assert store.rotate("old", "refresh", "G", "c", [
        NewToken("at", "access", {}, 60), NewToken("new", "refresh", {}, 600)])
    reused = store.find_token("old", "refresh")
    assert reused is not None and not store.active_token("old", "refresh")
    assert store.revoke_grant(reused.grant_id) == 2
    assert store.active_token("at", "access") is None
    assert store.active_token("new", "refresh") is None
    assert store.find_token("new", "refresh") is None
    assert _token_row(store, "old")[5] == ROTATED and _token_row(store, "new")[5] == REVOKED
    assert not store.rotate("new", "refresh", "G", "c", [NewToken("n2", "refresh", {}, 60)])
    assert not store.save_token("late", "access", "G", "c", {}, 60)
    assert store.active_token("other-grant", "refresh") == ("H", "c", {})


# -- revocation ---------------------------------------------------------------------------------

def test_revoking_a_grant_counts_its_live_tokens_and_can_be_repeated(tmp_path):
    store = _store(tmp_path)
    for name in ("a", "b", "c"):
        store.save_token(name, "access", "G", "c", {}, 60)
    store.save_token("h", "access", "H", "c", {}, 60)
    before = time.time()
    assert store.revoke_grant("G") == 3
    after = time.time()
    assert store.revoke_grant("G") == 0
    rows = store.db.connect().execute("SELECT grant_id, expires_at FROM revoked_grants").fetchall()
    assert len(rows) == 1 and rows[0][0] == "G"
    assert before + 3600 <= rows[0][1] <= after + 3600 + 0.5
    assert _token_row(store, "h")[5] == LIVE


def test_a_revoked_grant_is_remembered_for_an_hour_then_forgotten(tmp_path):
    store = _store(tmp_path)
    store.revoke_grant("old")
    store.revoke_grant("recent")
    conn = store.db.connect()
    conn.execute("UPDATE revoked_grants SET expires_at = ? WHERE grant_id = 'old'",
                 (time.time() - 1,))
    conn.execute("UPDATE revoked_grants SET expires_at = ? WHERE grant_id = 'recent'",
                 (time.time() + 5,))
    store.revoke_grant("G")  # sweeps the expired entries only
    grants = {row[0] for row in conn.execute("SELECT grant_id FROM revoked_grants")}
    assert grants == {"recent", "G"}
    assert store.save_token("t1", "access", "old", "c", {}, 60) is True
    assert store.save_token("t2", "access", "recent", "c", {}, 60) is False


# -- purge --------------------------------------------------------------------------------------

def _add_tokens(store: GrantStore, names: list[str], expires_at: float) -> None:
    store.db.connect().executemany(
        "INSERT INTO tokens (token_hash, kind, grant_id, client_id, data, expires_at) "
        "VALUES (?, 'access', 'G', 'c', '{}', ?)", [(_sha(n), expires_at) for n in names])


def _count(store: GrantStore, table: str) -> int:
    return store.db.connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_purge_removes_only_expired_tokens_and_codes_an_hour_past_expiry(tmp_path):
    store = _store(tmp_path)
    store.save_token("live", "access", "G", "c", {}, 60)
    store.save_token("dead", "access", "G", "c", {}, 60)
    _expire(store, "tokens", "token_hash", "dead")
    store.save_code("fresh", "G", {}, 60)
    store.save_code("recent", "G", {}, 60)
    store.save_code("old", "G", {}, 60)
    _expire(store, "codes", "code_hash", "recent", ago=1800)  # kept: a reuse is still detected
    _expire(store, "codes", "code_hash", "old", ago=3600.5)  # just over the hour: gone
    assert store.purge() == 2
    assert _token_row(store, "live") is not None and _token_row(store, "dead") is None
    hashes = {row[0] for row in store.db.connect().execute("SELECT code_hash FROM codes")}
    assert hashes == {_sha("fresh"), _sha("recent")}
    assert store.purge() == 0


def test_purge_is_bounded_per_table(tmp_path):
    store = _store(tmp_path)
    _add_tokens(store, [f"t{i}" for i in range(1001)], time.time() - 1)
    for i in range(3):
        store.save_code(f"c{i}", "G", {}, 60)
        _expire(store, "codes", "code_hash", f"c{i}", ago=4000)
    assert store.purge(limit=2) == 4
    assert _count(store, "codes") == 1 and _count(store, "tokens") == 999
    assert store.purge() == 1 + 999
    _add_tokens(store, [f"u{i}" for i in range(1001)], time.time() - 1)
    assert store.purge() == 1000
    assert _count(store, "tokens") == 1

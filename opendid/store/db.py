"""The SQLite database every worker shares: WAL mode, one connection per thread.

The file is created 0600 in a 0700 folder before SQLite opens it (its -wal and -shm files take
the main file's mode); files an older version left readable by others are tightened.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from opendid.private_files import ensure_private_file, private_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    client_secret TEXT,
    redirect_urls TEXT NOT NULL,
    requirements TEXT NOT NULL,
    id_token_alg TEXT,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS one_time (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL NOT NULL,
    owner TEXT,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tokens_grant ON tokens (grant_id);
"""

# after SCHEMA and the migrations: the purge reads by expiry; one owner (a login) holds at most
# one value of a kind (a new challenge replaces the login's previous one)
INDEXES = """
CREATE INDEX IF NOT EXISTS one_time_expiry ON one_time (expires_at);
CREATE UNIQUE INDEX IF NOT EXISTS one_time_owner ON one_time (kind, owner);
CREATE INDEX IF NOT EXISTS codes_expiry ON codes (expires_at);
CREATE INDEX IF NOT EXISTS tokens_expiry ON tokens (expires_at);
"""

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def secure_sqlite_file(path: Path) -> None:
    """Create the database file 0600 in a 0700 folder before SQLite does, and tighten the files
    of an existing database (SQLite copies the main file's mode only when it creates them)."""
    private_dir(path.parent)
    ensure_private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            ensure_private_file(side)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE: SQLite's write lock, taken at once, so check-then-write is atomic across
    threads and worker processes; any exception rolls the whole block back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Connections:
    """One SQLite connection per thread (and per process: never used across a fork), WAL mode;
    safe to create before gunicorn forks."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        secure_sqlite_file(Path(self.path))

    def connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (a new one opens on next use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class Database(Connections):
    """The service's state (`opendid.db`): the schema is created and migrated on open."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        with self.connect() as conn:
            conn.executescript(SCHEMA)
            _migrate(conn)
            conn.executescript(INDEXES)

    @property
    def utils(self) -> sqlite_utils.Database:
        """A sqlite-utils view on this thread's connection."""
        return sqlite_utils.Database(self.connect())


def _migrate(conn: sqlite3.Connection) -> None:
    """Columns added since the first release."""
    add_columns(conn, "one_time", {"owner": "TEXT"})


def add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Add the columns (name: declaration) a table made by an older version lacks (SQLite has
    no ADD COLUMN IF NOT EXISTS); another process adding one first is fine."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, declaration in columns.items():
        if name in have:
            continue
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise

"""Registered clients (relying parties), kept in SQLite; the config's clients are upserted."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from opendid.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    client_secret: str | None
    redirect_urls: list[str]
    requirements: list[dict[str, Any]] = field(default_factory=list)
    id_token_alg: str | None = None

    @property
    def is_standard(self) -> bool:
        """Standard OIDC clients get JWKS-signed tokens with the OIDC issuer."""
        return self.id_token_alg is not None


class ClientStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(self, client: ClientRecord, source: str = "config") -> None:
        self.db.utils["clients"].upsert({
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "redirect_urls": json.dumps(client.redirect_urls),
            "requirements": json.dumps(client.requirements),
            "id_token_alg": client.id_token_alg,
            "source": source,
        }, pk="client_id")

    def get(self, client_id: str) -> ClientRecord | None:
        row = self.db.connect().execute(
            "SELECT client_id, client_secret, redirect_urls, requirements, id_token_alg "
            "FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            return None
        return ClientRecord(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4])

    def source(self, client_id: str) -> str | None:
        row = self.db.connect().execute(
            "SELECT source FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        return None if row is None else str(row[0])

    def delete(self, client_id: str) -> bool:
        cursor = self.db.connect().execute("DELETE FROM clients WHERE client_id = ?",
                                           (client_id,))
        return cursor.rowcount == 1

    def all(self) -> list[ClientRecord]:
        ids = [r[0] for r in self.db.connect().execute("SELECT client_id FROM clients")]
        return [c for c in (self.get(i) for i in ids) if c is not None]


# -- client secrets -----------------------------------------------------------------------------
#
# `opendid clients add` generates 256-bit random secrets and stores only their SHA-256, marked
# "sha256$<hex>". A slow KDF buys nothing against brute force of a 256-bit secret and would cost
# every token request; user-chosen (guessable) secrets exist only in config.yaml, which keeps
# them in plain text for compatibility with OpenDID's config, so they are stored as given.

HASH_PREFIX = "sha256$"


def hash_client_secret(secret: str) -> str:
    """The stored form of a generated client secret."""
    return HASH_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def _is_hashed(stored: str) -> bool:
    digest = stored[len(HASH_PREFIX):]
    return stored.startswith(HASH_PREFIX) and len(digest) == 64 and all(
        c in "0123456789abcdef" for c in digest)


def client_secret_matches(stored: str | None, candidate: str) -> bool:
    """Does `candidate` match the stored secret (hashed or plain)? Both sides are hashed and
    compared in constant time, so neither the content nor the length of a plain secret leaks."""
    if stored is None:
        return False
    expected = stored[len(HASH_PREFIX):] if _is_hashed(stored) else \
        hashlib.sha256(stored.encode("utf-8", "surrogatepass")).hexdigest()
    given = hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).hexdigest()
    return hmac.compare_digest(expected.encode(), given.encode())

"""Registered clients (relying parties), kept in SQLite; the config's clients are upserted."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from opendid.store.db import Database, add_columns

log = logging.getLogger(__name__)

RESPONSE_TYPES = ("code", "id_token", "id_token token")
PUBLIC_CLIENT_ALG = "RS256"

# Columns added after the first release: created on existing databases at start.
ADDED_COLUMNS = {
    "response_types": "TEXT",
    "refresh_requires_client_auth": "INTEGER NOT NULL DEFAULT 0",
    "post_logout_redirect_urls": "TEXT",
    "claim_map": "TEXT",
    "checks_directory": "TEXT",
}


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    client_secret: str | None
    redirect_urls: list[str]
    requirements: list[dict[str, Any]] = field(default_factory=list)
    id_token_alg: str | None = None
    response_types: tuple[str, ...] | None = None
    refresh_requires_client_auth: bool = False
    # RP-initiated logout targets; empty: the redirect URLs are accepted
    post_logout_redirect_urls: list[str] = field(default_factory=list)
    # standard claim -> credential property; None: the config's default map
    claim_map: dict[str, str] | None = None
    # folder of CEL login policies (login/policies.py); None: no policy
    checks_directory: str | None = None

    @property
    def is_public(self) -> bool:
        return not self.client_secret

    @property
    def is_standard(self) -> bool:
        """Standard clients get JWKS-signed tokens with the OIDC issuer and `aud` = client id.
        A public client holds no secret to check an HMAC-signed token with, so it is always
        standard."""
        return self.id_token_alg is not None or self.is_public

    @property
    def signing_alg(self) -> str | None:
        """The JWKS algorithm of a standard client's tokens (None: OpenDID's configured key)."""
        if self.id_token_alg is not None:
            return self.id_token_alg
        return PUBLIC_CLIENT_ALG if self.is_public else None

    @property
    def allowed_response_types(self) -> tuple[str, ...]:
        """The configured list; by default OpenDID-style confidential clients keep all three
        (compatibility), standard and public clients the code flow only."""
        if self.response_types is not None:
            return self.response_types
        return ("code",) if self.is_standard else RESPONSE_TYPES

    @property
    def refresh_needs_client_auth(self) -> bool:
        """Whether its refresh tokens may only be used at `/token` with client authentication
        (RFC 6749 §6), not at OpenDID's unauthenticated `/api/v1/refresh`."""
        return self.is_standard or self.refresh_requires_client_auth


class ClientStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        add_columns(self.db.connect(), "clients", ADDED_COLUMNS)

    def upsert(self, client: ClientRecord, source: str = "config") -> None:
        types = client.response_types
        self.db.utils["clients"].upsert({
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "redirect_urls": json.dumps(client.redirect_urls),
            "requirements": json.dumps(client.requirements),
            "id_token_alg": client.id_token_alg,
            "source": source,
            "response_types": None if types is None else json.dumps(list(types)),
            "refresh_requires_client_auth": int(client.refresh_requires_client_auth),
            "post_logout_redirect_urls": json.dumps(client.post_logout_redirect_urls),
            "claim_map": None if client.claim_map is None else json.dumps(client.claim_map),
            "checks_directory": client.checks_directory,
        }, pk="client_id")

    def get(self, client_id: str) -> ClientRecord | None:
        row = self.db.connect().execute(
            "SELECT client_id, client_secret, redirect_urls, requirements, id_token_alg, "
            "response_types, refresh_requires_client_auth, post_logout_redirect_urls, claim_map, "
            "checks_directory FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            return None
        types = None if row[5] is None else tuple(json.loads(row[5]))
        return ClientRecord(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4],
                            types, bool(row[6]), json.loads(row[7] or "[]"),
                            None if row[8] is None else json.loads(row[8]), row[9])

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

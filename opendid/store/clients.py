"""Registered clients (relying parties), kept in SQLite; the config's clients are upserted."""

from __future__ import annotations

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

"""Who may use /admin: the config's `admin.dids` plus DIDs added with `opendid admin add-did`
(a table in the instance's SQLite). Entries are stored in the one canonical spelling of a
KILT DID, so a DID written in another SS58 encoding names the same admin."""

from __future__ import annotations

import re
import time

from scalecodec.utils.ss58 import ss58_decode

from opendid.kilt.dids import FULL_PREFIX, LIGHT_PREFIX, full_did_from_account, parse_full_did
from opendid.kilt.errors import InvalidDid
from opendid.store.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS admin_dids (
    did TEXT PRIMARY KEY,
    added_at REAL NOT NULL
);
"""
_HEX_ACCOUNT = re.compile(r"0x[0-9a-fA-F]{64}")
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]{1,64}")


def normalise_did(value: object) -> str:
    """The canonical `did:kilt:<ss58 prefix 38>` of a full DID written by an operator in any
    SS58 prefix (or as the 0x account id), surrounding whitespace and the method's case
    tolerated. Operator input only: logins always yield the canonical form."""
    if not isinstance(value, str):
        raise InvalidDid("a DID must be a string")
    text = value.strip()
    if text[:len(FULL_PREFIX)].lower() != FULL_PREFIX:
        raise InvalidDid(f"'{text[:80]}' is not a KILT DID (expected did:kilt:<address>)")
    if text[:len(LIGHT_PREFIX)].lower() == LIGHT_PREFIX:
        raise InvalidDid("a full DID is required here, not a light DID")
    address = text[len(FULL_PREFIX):].strip()
    if _HEX_ACCOUNT.fullmatch(address):
        return full_did_from_account(bytes.fromhex(address[2:])).uri
    try:
        return parse_full_did(FULL_PREFIX + address).uri
    except InvalidDid:
        pass
    if _BASE58.fullmatch(address) is None:
        raise InvalidDid(f"'{text[:80]}' is not a full KILT DID (expected did:kilt:<address>)")
    try:
        raw = bytes.fromhex(ss58_decode(address))
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidDid(f"'{text[:80]}' is not a KILT DID: {exc}") from None
    if len(raw) != 32:
        raise InvalidDid(f"'{text[:80]}' does not encode a 32-byte account id")
    return full_did_from_account(raw).uri


class AdminList:
    """The allow-list: read on every admin request, so a DID removed with the CLI loses its
    admin session at its next request."""

    def __init__(self, db: Database, configured: list[str]) -> None:
        self.db = db
        self.configured = frozenset(normalise_did(did) for did in configured)
        self.db.connect().executescript(SCHEMA)

    def add(self, did: str) -> str:
        canonical = normalise_did(did)
        self.db.connect().execute(
            "INSERT OR IGNORE INTO admin_dids (did, added_at) VALUES (?, ?)",
            (canonical, time.time()))
        return canonical

    def remove(self, did: str) -> bool:
        cursor = self.db.connect().execute("DELETE FROM admin_dids WHERE did = ?",
                                           (normalise_did(did),))
        return cursor.rowcount == 1

    def stored(self) -> list[str]:
        return [row[0] for row in self.db.connect().execute(
            "SELECT did FROM admin_dids ORDER BY added_at")]

    def allows(self, did: str) -> bool:
        """Is this (logged-in, hence canonical) DID an admin? Compared in canonical form."""
        try:
            canonical = normalise_did(did)
        except InvalidDid:
            return False
        if canonical in self.configured:
            return True
        return self.db.connect().execute("SELECT 1 FROM admin_dids WHERE did = ?",
                                         (canonical,)).fetchone() is not None

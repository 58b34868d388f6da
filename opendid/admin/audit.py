"""The audit trail of the admin page: one log line per change, naming the admin's DID and
what changed; never a client secret (a rotation says only that it happened)."""

from __future__ import annotations

import logging

from opendid.store.clients import ClientRecord

log = logging.getLogger("opendid.admin.audit")


def describe(record: ClientRecord) -> str:
    """What a client is, for the audit line (no secret, not even its hash)."""
    style = f"standard {record.signing_alg}" if record.is_standard else "OpenDID-style"
    access = "public" if record.is_public else "confidential"
    ctypes = ",".join(r["cTypeHash"] for r in record.requirements) or "DID-only"
    return (f"{access}, {style}, redirect URIs {record.redirect_urls}, requirements {ctypes}, "
            f"claim map {record.claim_map or 'default'}")


def record(admin_did: str, action: str, client_id: str, detail: str = "") -> None:
    log.info("admin %s %s client %s%s", admin_did, action, client_id,
             f": {detail}" if detail else "")


def event(admin_did: str, what: str) -> None:
    log.info("admin %s %s", admin_did, what)

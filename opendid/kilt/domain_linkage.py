"""The well-known DID configuration (domain linkage) that wallets check before a session.

As the original makes it: a self-signed KILT credential under CType 0x9d27… with the
statements `{"@id": did}`, `{"kilt:ctype:0x9d27…#id": did}`, `{"kilt:ctype:0x9d27…#origin":
origin}`, salted with UUID nonces; the DID's assertion key signs the 32 root-hash bytes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from opendid.kilt.credentials import make_credential
from opendid.kilt.encoding import from_hex, to_hex
from opendid.kilt.keys import sr25519_keypair

DOMAIN_LINKAGE_CTYPE = "0x9d271c790775ee831352291f01c5d04c7979713a5896dcf5e81708184cc5c643"
CONTEXT = "https://identity.foundation/.well-known/did-configuration/v1"


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def did_configuration(did: str, origin: str, assertion_key_uri: str, seed: str,
                      now: dt.datetime | None = None) -> dict[str, Any]:
    """Build and sign the domain-linkage resource for `did` at `origin`."""
    now = now or dt.datetime.now(dt.UTC)
    credential = make_credential(DOMAIN_LINKAGE_CTYPE, {"id": did, "origin": origin}, did)
    root = credential.root_hash
    signature = sr25519_keypair(seed).sign(from_hex(root, 32, "root hash"))
    return {
        "@context": CONTEXT,
        "linked_dids": [{
            "@context": [
                "https://www.w3.org/2018/credentials/v1",
                CONTEXT,
            ],
            "issuer": did,
            "issuanceDate": _timestamp(now),
            "expirationDate": _timestamp(now + dt.timedelta(days=365)),
            "type": ["VerifiableCredential", "DomainLinkageCredential", "KiltCredential2020"],
            "credentialSubject": {"id": did, "origin": origin, "rootHash": root},
            "proof": {
                "type": "KILTSelfSigned2020",
                "proofPurpose": "assertionMethod",
                "verificationMethod": assertion_key_uri,
                "signature": to_hex(signature),
            },
        }],
    }

"""How an application's back end checks, itself, the credential a user logged in with.

The id_token of a credential login names the credential (`kilt_credential`: root hash, CType
hash, attester). The provider checked its attestation at login; a back end that keeps the user
logged in for long, or grants something valuable, reads the attestation again: one storage
read of `Attestation.Attestations(rootHash)`, here with the project's own `ChainClient`. A
revoked attestation, or one for another CType or by another attester, means the credential no
longer proves what it did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opendid.kilt.chain import ChainClient
from opendid.kilt.errors import KiltError

ROOT_HASH = re.compile(r"0x[0-9a-f]{64}")


@dataclass(frozen=True)
class AttestationCheck:
    valid: bool
    message: str


def check_attestation(chain: ChainClient, credential: Mapping[str, Any]) -> AttestationCheck:
    """Read the credential's attestation on chain and compare it with the id_token's claim."""
    root_hash = credential.get("rootHash")
    if not isinstance(root_hash, str) or not ROOT_HASH.fullmatch(root_hash):
        return AttestationCheck(False, "the credential claim has no valid root hash")
    try:
        attestation = chain.attestation(root_hash)
    except KiltError as exc:
        return AttestationCheck(False, f"could not read the chain: {exc}")
    if attestation is None:
        return AttestationCheck(False, "no attestation on chain")
    if attestation.revoked:
        return AttestationCheck(False, "the attestation has been revoked")
    if attestation.ctype_hash.lower() != str(credential.get("cTypeHash", "")).lower():
        return AttestationCheck(False, "attested for another CType")
    if attestation.attester.uri != credential.get("attester"):
        return AttestationCheck(False, "attested by another DID")
    return AttestationCheck(True, f"attested by {attestation.attester.uri}, not revoked")

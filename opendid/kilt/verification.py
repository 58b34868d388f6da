"""Verifying presentations against the chain, and matching them to a verifier's requirements.

Steps (contract, "Verifying a presentation"): data integrity of the disclosed claim; the claimer
signature over root hash ‖ our challenge by the owner's current authentication key; an
attestation on chain that exists, is not revoked and has the claim's CType. The chain is read
once for all presentations of a submission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opendid.kilt.chain import ChainClient, DidDocument
from opendid.kilt.credentials import Presentation, signing_data, verify_data_integrity
from opendid.kilt.crypto import verify_signature
from opendid.kilt.dids import FullDid, parse_full_did, parse_key_uri
from opendid.kilt.encoding import from_hex
from opendid.kilt.errors import CredentialInvalid, InvalidDid, InvalidHex, InvalidSignature
from opendid.kilt.messages import CTypeRequirement


@dataclass(frozen=True)
class VerifiedCredential:
    """A presentation that passed every check: who owns it, who attested it, what it says."""

    owner: FullDid
    web3name: str | None
    ctype_hash: str
    attester: FullDid
    root_hash: str
    properties: dict[str, Any]


def verify_presentations(
    presentations: Sequence[Presentation], challenge: str, chain: ChainClient,
    known: DidDocument | None = None,
) -> list[VerifiedCredential]:
    """Verify every presentation (all of one owner) or raise `CredentialInvalid`.

    `known` is a DID document already read in this login (the message sender's), reused
    when the owner is that DID.
    """
    if not presentations:
        raise CredentialInvalid("no credential was presented")
    owners = set()
    for presentation in presentations:
        verify_data_integrity(presentation)
        try:
            owners.add(parse_full_did(presentation.claim.owner))
        except InvalidDid as exc:
            raise CredentialInvalid(f"claim owner: {exc}") from None
    if len(owners) != 1:
        raise CredentialInvalid("all presented credentials must belong to one DID")
    (owner,) = owners
    roots = [p.rootHash for p in presentations]
    records = chain.login_records(owner, roots, known)
    if records.did is None:
        raise CredentialInvalid(f"the owner DID {owner} does not exist on chain")
    verified = []
    for presentation, root in zip(presentations, roots, strict=True):
        _verify_signature(presentation, owner, records.did, challenge)
        attestation = records.attestations[root]
        if attestation is None:
            raise CredentialInvalid("the credential is not attested on chain", "not_attested")
        if attestation.revoked:
            raise CredentialInvalid("the credential's attestation has been revoked", "revoked")
        if attestation.ctype_hash != presentation.claim.cTypeHash:
            raise CredentialInvalid("the attestation is for a different CType")
        verified.append(VerifiedCredential(
            owner=owner,
            web3name=records.web3name,
            ctype_hash=attestation.ctype_hash,
            attester=attestation.attester,
            root_hash=root,
            properties=dict(presentation.claim.contents),
        ))
    return verified


def _verify_signature(presentation: Presentation, owner: FullDid, document: DidDocument,
                      challenge: str) -> None:
    signature = presentation.claimerSignature
    try:
        key_uri = parse_key_uri(signature.keyUri)
        raw = from_hex(signature.signature, None, "signature")
    except (InvalidDid, InvalidHex) as exc:
        raise CredentialInvalid(f"claimer signature: {exc}") from None
    if key_uri.did != owner:
        raise CredentialInvalid("the credential is signed by another DID than its owner")
    key = document.authentication
    if key.id != key_uri.key_id:
        raise CredentialInvalid("the credential is not signed with the owner's authentication key")
    if signature.challenge is not None and signature.challenge != challenge:
        raise CredentialInvalid("the presentation answers another challenge")
    try:
        verify_signature(key.type, key.public_key, signing_data(presentation.rootHash, challenge),
                         raw)
    except (InvalidSignature, InvalidHex) as exc:
        raise CredentialInvalid(f"claimer signature: {exc}") from None


def match_requirements(
    credentials: Sequence[VerifiedCredential], requirements: Sequence[CTypeRequirement]
) -> VerifiedCredential | None:
    """The first credential that meets some requirement (CType, trusted attester, properties).

    Raises `CredentialInvalid` naming why none matched; None when there are no requirements.
    """
    if not requirements:
        return None
    reason, kind = "no presented credential has a requested CType", "requirements_unmet"
    for requirement in requirements:
        for credential in credentials:
            if credential.ctype_hash.lower() != requirement.cTypeHash.lower():
                continue
            trusted = {a for a in requirement.trustedAttesters}
            if trusted and credential.attester.uri not in trusted:
                reason = "the credential's attester is not trusted by this application"
                kind = "untrusted_attester"
                continue
            missing = [p for p in requirement.requiredProperties if p not in credential.properties]
            if missing:
                reason = f"required properties are not disclosed: {', '.join(missing)}"
                kind = "requirements_unmet"
                continue
            return credential
    raise CredentialInvalid(reason, kind)

"""Standard OIDC claims (OIDC Core §5.1, §5.4) from a KILT login, by the scopes granted.

Relying parties built for mainstream providers read `email`, `name`, `preferred_username`.
A KILT login yields a DID, maybe a web3name, and the properties of a verified credential; a
claim map (`claimMap` in the config, per client or as the default) says which credential
property fills which standard claim, e.g. `email: Email`. `preferred_username` is always the
web3name. A scope that was not granted yields none of its claims.

`email_verified` is true only when the email comes from a credential whose attester the
client lists in a non-empty `trustedAttesters` of a requirement for that CType: only then has
someone the client trusts vouched for it. With an empty list any attester passes, so a
self-attested credential would make any address "verified".

The credential claim (`CREDENTIAL_CLAIM`) names the credential of a credential login, so that
an application's back end can check its attestation on chain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opendid.login.identity import Identity
from opendid.store.clients import ClientRecord

# Which standard claims each scope releases.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_verified"),
    "profile": ("preferred_username", "name", "given_name", "family_name", "nickname"),
}
# The standard claims a claim map may fill from a credential property, and the scope of each.
# (`email_verified` and `preferred_username` are computed, not mapped.)
MAPPABLE_CLAIMS: dict[str, str] = {
    "email": "email",
    "name": "profile",
    "given_name": "profile",
    "family_name": "profile",
    "nickname": "profile",
}
# Without a `claimMap` in the config: the `Email` property of KILT's email CType.
DEFAULT_CLAIM_MAP: dict[str, str] = {"email": "Email"}
SUPPORTED_SCOPES: tuple[str, ...] = ("openid", *SCOPE_CLAIMS)
# In the id_token of a credential login, for standard clients:
# {"rootHash": "0x…", "cTypeHash": "0x…", "attester": "did:kilt:…"}.
CREDENTIAL_CLAIM = "kilt_credential"


def granted_scopes(scope: str | None) -> set[str]:
    """The scope tokens of a granted scope string (RFC 6749 §3.3: separated by single spaces,
    case-sensitive; `EMAIL` or `email\\tprofile` is not `email`)."""
    return {token for token in (scope or "").split(" ") if token}


def email_verified(identity: Identity, requirements: list[dict[str, Any]]) -> bool:
    """Whether the credential's attester is trusted by name for its CType (see module doc)."""
    if not identity.attester or not identity.ctype_hash:
        return False
    for requirement in requirements:
        trusted = requirement.get("trustedAttesters") or []
        same_ctype = str(requirement.get("cTypeHash", "")).lower() == identity.ctype_hash.lower()
        if same_ctype and trusted and identity.attester in trusted:
            return True
    return False


def standard_claims(identity: Identity, scope: str | None, claim_map: Mapping[str, str],
                    requirements: list[dict[str, Any]]) -> dict[str, Any]:
    """The standard claims the granted scopes release for this identity. A claim whose
    property was not disclosed, or is not a string, is left out (never an empty value)."""
    scopes = granted_scopes(scope)
    claims: dict[str, Any] = {}
    for claim, property_name in claim_map.items():
        value = identity.properties.get(property_name)
        if MAPPABLE_CLAIMS.get(claim) in scopes and isinstance(value, str) and value:
            claims[claim] = value
    if "email" in claims:
        claims["email_verified"] = email_verified(identity, requirements)
    if "profile" in scopes and identity.web3name:
        claims["preferred_username"] = identity.web3name
    return claims


def credential_claim(identity: Identity) -> dict[str, str] | None:
    """The credential of a credential login (None for a DID-only login)."""
    if not identity.root_hash or not identity.ctype_hash:
        return None
    found = {"rootHash": identity.root_hash, "cTypeHash": identity.ctype_hash}
    if identity.attester:
        found["attester"] = identity.attester
    return found


def supported_claims() -> list[str]:
    """Every standard claim this provider may release (discovery's `claims_supported`)."""
    return sorted({claim for claims in SCOPE_CLAIMS.values() for claim in claims})


def client_claims(client: ClientRecord, identity: Identity, scope: str | None,
                  default_map: Mapping[str, str]) -> dict[str, Any]:
    """`standard_claims` with the client's own claim map, or the default one."""
    claim_map = client.claim_map if client.claim_map is not None else default_map
    return standard_claims(identity, scope, claim_map, client.requirements)

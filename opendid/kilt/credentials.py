"""KILT credentials and presentations: claim hashing, root hash and claimer signatures.

Matches ``Kilt.Credential.fromClaim`` / ``verifyPresentation`` of the SDK byte for byte:
statements are ``JSON.stringify({key: value})`` (``{"@id": owner}`` first, then
``{"kilt:ctype:<hash>#<prop>": value}`` in contents order), salted with a nonce string, sorted,
and hashed together into the root hash that the attestation is stored under.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opendid.kilt.encoding import blake2b_256, from_hex, to_hex
from opendid.kilt.errors import CredentialInvalid, InvalidHex, InvalidMessage

MAX_PROPERTIES = 100


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class Claim(_Strict):
    cTypeHash: str
    contents: dict[str, Any]
    owner: str


class ClaimerSignature(_Strict):
    keyUri: str
    signature: str
    challenge: str | None = None


class Presentation(_Strict):
    """A credential as the wallet presents it, signed over root hash and our challenge."""

    claim: Claim
    claimHashes: list[str] = Field(max_length=MAX_PROPERTIES + 1)
    claimNonceMap: dict[str, str]
    rootHash: str
    delegationId: str | None = None
    legitimations: list[dict[str, Any]] = Field(default_factory=list)
    claimerSignature: ClaimerSignature


def parse_presentation(data: object) -> Presentation:
    """Validate one presentation's shape; wrong types or missing fields are `InvalidMessage`."""
    try:
        return Presentation.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(f"malformed presentation: {exc.errors()[0]['msg']}") from None


def canonical_json(value: object) -> str:
    """`JSON.stringify` of a value: compact, UTF-8, whole-number floats written as integers."""
    return json.dumps(_js_numbers(value), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _js_numbers(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    return value


def ctype_hash(schema: dict[str, Any]) -> str:
    """A CType's hash: blake2b-256 of its schema without `$id`, compact with sorted keys."""
    body = {k: v for k, v in schema.items() if k != "$id"}
    serialized = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return to_hex(blake2b_256(serialized.encode()))


def claim_statements(claim: Claim) -> list[str]:
    """The statements of a claim, in the SDK's order."""
    statements = [canonical_json({"@id": claim.owner})]
    for name, value in claim.contents.items():
        statements.append(canonical_json({f"kilt:ctype:{claim.cTypeHash}#{name}": value}))
    return statements


def statement_digest(statement: str) -> str:
    return to_hex(blake2b_256(statement.encode()))


def salted_hash(nonce: str, digest: str) -> str:
    """blake2b-256 of the UTF-8 string `nonce + digest` (a string concatenation)."""
    return to_hex(blake2b_256((nonce + digest).encode()))


def root_hash(
    claim_hashes: list[str], legitimation_roots: list[str], delegation_id: str | None
) -> str:
    """blake2b-256 over the raw claim hashes, legitimation root hashes and delegation id."""
    parts = [from_hex(h, 32, "claim hash") for h in claim_hashes]
    parts += [from_hex(h, 32, "legitimation root hash") for h in legitimation_roots]
    if delegation_id is not None:
        parts.append(from_hex(delegation_id, 32, "delegation id"))
    return to_hex(blake2b_256(b"".join(parts)))


def signing_data(root: str, challenge: str | None) -> bytes:
    """What the claimer signs: root-hash bytes followed by the challenge bytes."""
    data = from_hex(root, 32, "root hash")
    if challenge:
        data += from_hex(challenge, None, "challenge") if challenge.startswith("0x") else (
            challenge.encode()
        )
    return data


def verify_data_integrity(presentation: Presentation) -> None:
    """Check every disclosed statement is committed to in `claimHashes` and the root hash."""
    try:
        if len(presentation.claim.contents) > MAX_PROPERTIES:
            raise CredentialInvalid("too many claim properties")
        committed = set(presentation.claimHashes)
        for statement in _statements(presentation.claim):
            digest = statement_digest(statement)
            nonce = presentation.claimNonceMap.get(digest)
            if nonce is None:
                raise CredentialInvalid("a disclosed property has no nonce in claimNonceMap")
            if salted_hash(nonce, digest) not in committed:
                raise CredentialInvalid("a disclosed property does not match the claim hashes")
        legitimation_roots = [_legitimation_root(leg) for leg in presentation.legitimations]
        expected = root_hash(
            presentation.claimHashes, legitimation_roots, presentation.delegationId
        )
    except InvalidHex as exc:
        raise CredentialInvalid(str(exc)) from None
    if expected != presentation.rootHash:  # one spelling: lowercase, as the SDK writes it
        raise CredentialInvalid("the root hash does not match the claim hashes")


def _statements(claim: Claim) -> list[str]:
    """The claim's statements; values JSON cannot write (NaN, nesting too deep, integers too
    long to print) are a bad credential, not a crash."""
    try:
        return claim_statements(claim)
    except (ValueError, TypeError, RecursionError):
        raise CredentialInvalid("a claim property cannot be serialised as JSON") from None


def _legitimation_root(legitimation: dict[str, Any]) -> str:
    root = legitimation.get("rootHash")
    if not isinstance(root, str):
        raise CredentialInvalid("a legitimation has no rootHash")
    return root


@dataclass(frozen=True)
class Credential:
    """A credential as its holder keeps it (before presentation), as a JSON-able dict."""

    data: dict[str, Any]

    @property
    def root_hash(self) -> str:
        return str(self.data["rootHash"])


def make_credential(
    ctype: str, contents: dict[str, Any], owner: str, nonce: Callable[[], str] | None = None
) -> Credential:
    """Build a credential from a claim as `Kilt.Credential.fromClaim` does."""
    nonce = nonce or (lambda: str(uuid.uuid4()))
    claim = Claim(cTypeHash=ctype, contents=contents, owner=owner)
    nonce_map: dict[str, str] = {}
    hashes = []
    for statement in claim_statements(claim):
        digest = statement_digest(statement)
        nonce_map[digest] = nonce()
        hashes.append(salted_hash(nonce_map[digest], digest))
    hashes.sort(key=lambda h: int(h, 16))
    return Credential(
        {
            "claim": claim.model_dump(),
            "legitimations": [],
            "claimHashes": hashes,
            "claimNonceMap": nonce_map,
            "rootHash": root_hash(hashes, [], None),
            "delegationId": None,
        }
    )


def make_presentation(
    credential: Credential,
    key_uri: str,
    sign: Callable[[bytes], bytes],
    challenge: str | None,
    selected: list[str] | None = None,
) -> dict[str, Any]:
    """Present a credential: optionally hide properties, sign root hash ‖ challenge."""
    data = json.loads(json.dumps(credential.data))
    if selected is not None:
        claim = Claim.model_validate(data["claim"])
        hidden = {k for k in claim.contents if k not in selected}
        for name in hidden:
            key = f"kilt:ctype:{claim.cTypeHash}#{name}"
            statement = canonical_json({key: claim.contents[name]})
            data["claimNonceMap"].pop(statement_digest(statement), None)
            del data["claim"]["contents"][name]
    signature = sign(signing_data(data["rootHash"], challenge))
    data["claimerSignature"] = {"keyUri": key_uri, "signature": to_hex(signature)}
    if challenge is not None:
        data["claimerSignature"]["challenge"] = challenge
    return data

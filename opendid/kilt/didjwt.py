"""DID-only login tokens: a JWT-shaped string signed with `signWithDid`, parsed by hand.

header.payload are standard base64 (padded) JSON; the wallet signs the ASCII bytes of the
lowercase hex SHA-512 of ``header.payload``; the third part is standard base64 of the
0x-hex signature. It is not a JWS, so JOSE libraries cannot verify it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from opendid.kilt.chain import DidDocument
from opendid.kilt.crypto import verify_signature
from opendid.kilt.dids import KeyUri, parse_full_did, parse_key_uri
from opendid.kilt.encoding import from_hex
from opendid.kilt.errors import InvalidDid, InvalidHex, InvalidSignature, KiltError

CLOCK_SKEW = 30


class DidJwtInvalid(KiltError):
    """The token is malformed, expired, for another nonce, or its signature does not verify."""


@dataclass(frozen=True)
class DidJwt:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: str
    signature: bytes
    key_uri: KeyUri

    @property
    def did(self) -> str:
        return str(self.payload["iss"])


def _b64json(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.b64decode(part + "=" * (-len(part) % 4), validate=False))
    except (binascii.Error, ValueError):
        raise DidJwtInvalid("token part is not base64 JSON") from None
    if not isinstance(value, dict):
        raise DidJwtInvalid("token part is not a JSON object")
    return value


def signing_data(header_and_payload: str) -> str:
    """What the wallet signs: hex SHA-512 of the ASCII `header.payload` (no 0x)."""
    return hashlib.sha512(header_and_payload.encode("ascii")).hexdigest()


def unsigned_did_jwt(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """`header.payload` as OpenDID's login page writes it (standard, padded base64 JSON)."""
    def enc(obj: dict[str, Any]) -> str:
        return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()

    return f"{enc(header)}.{enc(payload)}"


def make_did_jwt(unsigned: str, signature_hex: str) -> str:
    """The token: `header.payload` plus base64 of the wallet's 0x-hex signature."""
    return f"{unsigned}.{base64.b64encode(signature_hex.encode()).decode()}"


def parse_did_jwt(token: str) -> DidJwt:
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 8192:
        raise DidJwtInvalid("token must have three parts")
    header, payload = _b64json(parts[0]), _b64json(parts[1])
    try:
        signature_hex = base64.b64decode(parts[2] + "=" * (-len(parts[2]) % 4)).decode("ascii")
        signature = from_hex(signature_hex, None, "signature")
        key_uri = parse_key_uri(header.get("kid"))
    except (binascii.Error, UnicodeDecodeError, InvalidHex, InvalidDid) as exc:
        raise DidJwtInvalid(f"bad signature or kid: {exc}") from None
    return DidJwt(header, payload, f"{parts[0]}.{parts[1]}", signature, key_uri)


def check_claims(token: DidJwt, nonce: str, now: float | None = None) -> None:
    """iss = sub = the kid's DID, nbf <= now <= exp (with skew), nonce = the session's."""
    now = time.time() if now is None else now
    payload = token.payload
    iss, sub = payload.get("iss"), payload.get("sub")
    if not isinstance(iss, str) or iss != sub:
        raise DidJwtInvalid("iss and sub must be the same DID")
    try:
        if parse_full_did(iss) != token.key_uri.did:
            raise DidJwtInvalid("the signing key does not belong to the token's DID")
    except InvalidDid as exc:
        raise DidJwtInvalid(str(exc)) from None
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
        raise DidJwtInvalid("exp and nbf must be numbers")
    if exp < now - CLOCK_SKEW:
        raise DidJwtInvalid("token has expired")
    if nbf > now + CLOCK_SKEW:
        raise DidJwtInvalid("token is not valid yet")
    if not isinstance(payload.get("nonce"), str) or payload["nonce"] != nonce:
        raise DidJwtInvalid("nonce does not match the login session")


def verify_did_signature(token: DidJwt, document: DidDocument) -> None:
    """The signature by the DID's authentication key (raw or MultiSignature-typed)."""
    key = document.authentication
    if key.id != token.key_uri.key_id:
        raise InvalidSignature("the kid is not the DID's authentication key")
    data = signing_data(token.signing_input).encode("ascii")
    verify_signature(key.type, key.public_key, data, token.signature)

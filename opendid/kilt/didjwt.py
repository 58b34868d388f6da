"""DID-only login tokens: a JWT-shaped string signed with `signWithDid`, parsed by hand.

header.payload are standard base64 (padded, as the login page's `btoa` writes it) JSON; the
wallet signs the ASCII bytes of the lowercase hex SHA-512 of ``header.payload``; the third part
is standard padded base64 of the wallet's lowercase 0x-hex signature (raw, as Sporran writes it).
It is not a JWS, so JOSE libraries cannot verify it.

Every part has exactly one accepted spelling, and the token is single-use by what was signed
(`replay_key`), so a captured token cannot be re-spelled into a second login.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from opendid.kilt.chain import DidDocument
from opendid.kilt.crypto import verify_signature
from opendid.kilt.dids import FullDid, KeyUri, parse_full_did, parse_key_uri
from opendid.kilt.encoding import from_hex
from opendid.kilt.errors import InvalidDid, InvalidHex, InvalidSignature, KiltError

CLOCK_SKEW = 30
MAX_TOKEN_LENGTH = 8192
DEFAULT_MAX_LIFETIME = 300
MAX_SAFE_INTEGER = 2**53 - 1
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


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
    def did(self) -> FullDid:
        """The DID that signed (the kid's DID; `check_claims` binds iss and sub to it)."""
        return self.key_uri.did


def _canonical_base64(part: str, what: str) -> bytes:
    """Standard, padded base64 exactly as `btoa` writes it; anything else is refused."""
    if _BASE64.fullmatch(part) is None or not part:
        raise DidJwtInvalid(f"the {what} is not standard padded base64")
    raw = base64.b64decode(part, validate=True)
    if base64.b64encode(raw).decode("ascii") != part:  # non-zero bits in the last character
        raise DidJwtInvalid(f"the {what} is not canonical base64")
    return raw


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise DidJwtInvalid("token JSON repeats a key")
    return result


def _reject_constant(name: str) -> None:
    raise DidJwtInvalid(f"token JSON may not contain {name}")


def _json_object(part: str, what: str) -> dict[str, Any]:
    raw = _canonical_base64(part, what)
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                           parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DidJwtInvalid(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise DidJwtInvalid(f"the {what} is not a JSON object")
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


def parse_did_jwt(token: object) -> DidJwt:
    """Split and decode a token strictly; `DidJwtInvalid` for any other spelling or shape."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise DidJwtInvalid("token must be an ASCII string of at most 8192 characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise DidJwtInvalid("token must have three parts")
    header = _json_object(parts[0], "header")
    payload = _json_object(parts[1], "payload")
    signature_text = _canonical_base64(parts[2], "signature part")
    try:
        signature = from_hex(signature_text.decode("ascii"), None, "signature")
        key_uri = parse_key_uri(header.get("kid"))
    except (UnicodeDecodeError, InvalidHex, InvalidDid) as exc:
        raise DidJwtInvalid(f"bad signature or kid: {exc}") from None
    return DidJwt(header, payload, f"{parts[0]}.{parts[1]}", signature, key_uri)


def _timestamp(value: object, name: str) -> float:
    """A time in seconds: an int or finite float (not a bool) within JavaScript's safe range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DidJwtInvalid(f"{name} must be a number of seconds")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise DidJwtInvalid(f"{name} is out of range")
    if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_SAFE_INTEGER):
        raise DidJwtInvalid(f"{name} is out of range")
    return float(value)


def check_claims(token: DidJwt, nonce: str, now: float | None = None,
                 max_lifetime: float = DEFAULT_MAX_LIFETIME) -> None:
    """iss = sub = the kid's DID (canonical), nbf <= now <= exp (with skew), a lifetime of at
    most `max_lifetime` seconds, nonce = the session's."""
    now = time.time() if now is None else now
    payload = token.payload
    iss, sub = payload.get("iss"), payload.get("sub")
    if not isinstance(iss, str) or iss != sub:
        raise DidJwtInvalid("iss and sub must be the same DID")
    try:
        issuer = parse_full_did(iss)
    except InvalidDid as exc:
        raise DidJwtInvalid(str(exc)) from None
    if issuer != token.key_uri.did:
        raise DidJwtInvalid("the signing key does not belong to the token's DID")
    exp = _timestamp(payload.get("exp"), "exp")
    nbf = _timestamp(payload.get("nbf"), "nbf")
    if exp < now - CLOCK_SKEW:
        raise DidJwtInvalid("token has expired")
    if nbf > now + CLOCK_SKEW:
        raise DidJwtInvalid("token is not valid yet")
    if exp < nbf or exp - nbf > max_lifetime or exp > now + max_lifetime + CLOCK_SKEW:
        raise DidJwtInvalid(f"token lifetime exceeds {max_lifetime:g} seconds")
    if not isinstance(payload.get("nonce"), str) or payload["nonce"] != nonce:
        raise DidJwtInvalid("nonce does not match the login session")


def replay_key(signing_input: str, raw_signature: bytes) -> str:
    """What makes a token single-use: what was verified (the signing input and the raw
    signature bytes), not the string received, so no re-spelling of it is a second login."""
    signed = signing_input.encode("ascii")
    return hashlib.sha256(len(signed).to_bytes(4, "big") + signed + raw_signature).hexdigest()


def verify_did_signature(token: DidJwt, document: DidDocument) -> str:
    """Check the signature by the DID's authentication key; the token's `replay_key`."""
    if document.did != token.key_uri.did:
        raise InvalidSignature("the DID document is not the kid's DID")
    key = document.authentication
    if key.id != token.key_uri.key_id:
        raise InvalidSignature("the kid is not the DID's authentication key")
    data = signing_data(token.signing_input).encode("ascii")
    raw = verify_signature(key.type, key.public_key, data, token.signature)
    return replay_key(token.signing_input, raw)

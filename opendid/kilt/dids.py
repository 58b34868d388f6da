"""KILT DIDs and key URIs: full DIDs, key URIs and light DIDs, parsed strictly.

Full DID:  ``did:kilt:<ss58 address, prefix 38>``
Key URI:   ``<full DID>#0x<32-byte key id>``
Light DID: ``did:kilt:light:<2-digit auth key type><address>[:z<base58(0x00 ‖ CBOR details)>]``,
whose CBOR ``e`` entry carries the x25519 key-agreement key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import base58
import cbor2

from opendid.kilt.encoding import (
    account_id_to_address,
    address_to_account_id,
    from_hex,
)
from opendid.kilt.errors import InvalidDid, InvalidHex, InvalidLightDid

FULL_PREFIX = "did:kilt:"
LIGHT_PREFIX = "did:kilt:light:"
LIGHT_AUTH_KEY_TYPES = {"00": "sr25519", "01": "ed25519"}
MAX_URI_LENGTH = 4096


@dataclass(frozen=True)
class FullDid:
    """A full (on-chain) KILT DID; its identifier is the 32-byte account id."""

    address: str
    account_id: bytes

    @property
    def uri(self) -> str:
        return FULL_PREFIX + self.address

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class KeyUri:
    """A key of a full DID: ``did#0x<key id>``."""

    did: FullDid
    key_id: bytes

    @property
    def uri(self) -> str:
        return f"{self.did.uri}#0x{self.key_id.hex()}"

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class LightDid:
    """A light DID, as wallets use for the temporary session key."""

    auth_key_type: str
    address: str
    auth_public_key: bytes
    encryption_key: bytes | None

    @property
    def uri(self) -> str:
        return f"{LIGHT_PREFIX}{_auth_type_code(self.auth_key_type)}{self.address}"


def _auth_type_code(key_type: str) -> str:
    for code, name in LIGHT_AUTH_KEY_TYPES.items():
        if name == key_type:
            return code
    raise InvalidLightDid(f"unsupported light DID authentication key type '{key_type}'")


def full_did_from_account(account_id: bytes) -> FullDid:
    """The full DID whose identifier is this 32-byte account id."""
    return FullDid(address=account_id_to_address(account_id), account_id=account_id)


def parse_full_did(value: object) -> FullDid:
    """Parse ``did:kilt:<address>``; a fragment or a light DID is an error here."""
    if not isinstance(value, str) or len(value) > MAX_URI_LENGTH:
        raise InvalidDid("a DID must be a string")
    if not value.startswith(FULL_PREFIX):
        raise InvalidDid(f"'{_clip(value)}' is not a KILT DID (expected did:kilt:<address>)")
    if value.startswith(LIGHT_PREFIX):
        raise InvalidDid("a full DID is required here, not a light DID")
    address = value[len(FULL_PREFIX):]
    if not address or ":" in address or "#" in address:
        raise InvalidDid(f"'{_clip(value)}' is not a full KILT DID (expected did:kilt:<address>)")
    return FullDid(address=address, account_id=address_to_account_id(address))


def parse_key_uri(value: object) -> KeyUri:
    """Parse ``did:kilt:<address>#0x<32-byte key id>``."""
    if not isinstance(value, str) or len(value) > MAX_URI_LENGTH:
        raise InvalidDid("a key URI must be a string")
    did_part, sep, fragment = value.partition("#")
    if not sep:
        raise InvalidDid(f"'{_clip(value)}' is not a key URI (expected <DID>#0x<key id>)")
    did = parse_full_did(did_part)
    try:
        key_id = from_hex(fragment, 32, "key id")
    except InvalidHex as exc:
        raise InvalidDid(f"invalid key id in key URI: {exc}") from None
    return KeyUri(did=did, key_id=key_id)


def parse_light_did(value: object) -> LightDid:
    """Parse a light DID URI, with or without a ``#encryption`` (or any) fragment.

    Byte strings may come wrapped in CBOR tag 64 (as cbor-web writes them) and the details may
    carry unknown keys, even a secret key, which are ignored (and must never be logged).
    """
    if not isinstance(value, str) or len(value) > MAX_URI_LENGTH:
        raise InvalidLightDid("a light DID must be a string")
    return _parse_light_uri(value.split("#", 1)[0])


@functools.lru_cache(maxsize=1024)
def _parse_light_uri(uri: str) -> LightDid:
    """Parsed once per session key: each login step reads the same temporary light DID (only
    good results are kept; an error is raised again each time)."""
    if not uri.startswith(LIGHT_PREFIX):
        raise InvalidLightDid("not a light DID (expected did:kilt:light:...)")
    parts = uri[len(LIGHT_PREFIX):].split(":")
    if len(parts) > 2:
        raise InvalidLightDid("too many ':'-separated parts")
    ident = parts[0]
    key_type = LIGHT_AUTH_KEY_TYPES.get(ident[:2])
    if key_type is None:
        raise InvalidLightDid(f"unknown authentication key type '{ident[:2]}'")
    address = ident[2:]
    try:
        auth_public_key = address_to_account_id(address)
    except InvalidDid as exc:
        raise InvalidLightDid(f"bad address: {exc}") from None
    encryption_key = _parse_details(parts[1]) if len(parts) == 2 else None
    return LightDid(key_type, address, auth_public_key, encryption_key)


def light_did_encryption_key(value: object) -> bytes:
    """The x25519 key-agreement public key of a light DID; an error when it has none."""
    light = parse_light_did(value)
    if light.encryption_key is None:
        raise InvalidLightDid("the light DID carries no key-agreement key")
    return light.encryption_key


def make_light_did(auth_key_type: str, auth_public_key: bytes, encryption_key: bytes) -> str:
    """Build a light DID with an x25519 key-agreement key, as wallets do."""
    details = cbor2.dumps({"e": {"publicKey": encryption_key, "type": "x25519"}})
    encoded = "z" + base58.b58encode(b"\x00" + details).decode()
    address = account_id_to_address(auth_public_key)
    return f"{LIGHT_PREFIX}{_auth_type_code(auth_key_type)}{address}:{encoded}"


def _parse_details(encoded: str) -> bytes | None:
    if not encoded.startswith("z"):
        raise InvalidLightDid("details must be multibase base58btc ('z' prefix)")
    try:
        raw = base58.b58decode(encoded[1:])
    except ValueError:
        raise InvalidLightDid("details are not valid base58") from None
    if not raw or raw[0] != 0:
        raise InvalidLightDid("unsupported details serialization version")
    try:
        details = cbor2.loads(raw[1:])
    except Exception:  # cbor2 raises several unrelated types for garbage input
        raise InvalidLightDid("details are not valid CBOR") from None
    if not isinstance(details, dict):
        raise InvalidLightDid("details must be a CBOR map")
    entry = details.get("e")
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise InvalidLightDid("key-agreement entry 'e' must be a map")
    if entry.get("type") != "x25519":
        raise InvalidLightDid("key-agreement key must be of type x25519")
    key = _unwrap_bytes(entry.get("publicKey"))
    if key is None or len(key) != 32:
        raise InvalidLightDid("key-agreement public key must be 32 bytes")
    return key


def _unwrap_bytes(value: object) -> bytes | None:
    if isinstance(value, cbor2.CBORTag) and value.tag == 64:
        value = value.value
    return bytes(value) if isinstance(value, (bytes, bytearray)) else None


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "…"

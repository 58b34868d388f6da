"""Byte-level helpers shared by the protocol layer: 0x-hex, blake2b and SS58 addresses."""

from __future__ import annotations

import hashlib

from scalecodec.utils.ss58 import ss58_decode, ss58_encode

from opendid.kilt.errors import InvalidDid, InvalidHex

KILT_SS58_PREFIX = 38


def from_hex(value: object, length: int | None = None, what: str = "value") -> bytes:
    """Decode a `0x`-prefixed hex string, optionally of an exact byte length."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidHex(f"{what} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidHex(f"{what} is not valid hex") from None
    if length is not None and len(raw) != length:
        raise InvalidHex(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def to_hex(raw: bytes) -> str:
    """Encode bytes as lowercase `0x`-prefixed hex, the encoding KILT uses everywhere."""
    return "0x" + raw.hex()


def blake2b_256(data: bytes) -> bytes:
    """blake2b with a 32-byte digest (substrate's `blake2_256`)."""
    return hashlib.blake2b(data, digest_size=32).digest()


def address_to_account_id(address: str) -> bytes:
    """Decode a KILT SS58 address (prefix 38) to its 32-byte account id, checking the checksum."""
    try:
        account_hex = ss58_decode(address, valid_ss58_format=KILT_SS58_PREFIX)
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidDid(f"'{address}' is not a KILT address (SS58 prefix 38): {exc}") from None
    raw = bytes.fromhex(account_hex)
    if len(raw) != 32:
        raise InvalidDid(f"'{address}' does not encode a 32-byte account id")
    return raw


def account_id_to_address(account_id: bytes) -> str:
    """Encode a 32-byte account id as a KILT SS58 address (prefix 38)."""
    return ss58_encode(account_id, ss58_format=KILT_SS58_PREFIX)

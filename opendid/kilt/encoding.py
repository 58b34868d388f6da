"""Byte-level helpers shared by the protocol layer: 0x-hex, blake2b and SS58 addresses.

Every decoder here accepts exactly one spelling of a value (lowercase hex, the canonical SS58
form with prefix 38): a second spelling of the same bytes would be a second DID, token or
signature to every check that compares strings.
"""

from __future__ import annotations

import functools
import hashlib
import re

from scalecodec.utils.ss58 import ss58_decode, ss58_encode

from opendid.kilt.errors import InvalidDid, InvalidHex

KILT_SS58_PREFIX = 38
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]{1,64}")


def from_hex(value: object, length: int | None = None, what: str = "value") -> bytes:
    """Decode `0x`-prefixed lowercase hex (as KILT writes it), optionally of an exact length.

    Upper-case digits, whitespace or an odd number of digits are refused: one spelling only.
    """
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidHex(f"{what} must be a 0x-prefixed hex string")
    digits = value[2:]
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = None
    # fromhex also takes upper case and spaces: only the one spelling hex() gives back passes
    # (a check in C: message ciphertexts are kilobytes long)
    if raw is None or raw.hex() != digits:
        raise InvalidHex(f"{what} is not lowercase hex with an even number of digits")
    if length is not None and len(raw) != length:
        raise InvalidHex(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def to_hex(raw: bytes) -> str:
    """Encode bytes as lowercase `0x`-prefixed hex, the encoding KILT uses everywhere."""
    return "0x" + raw.hex()


def blake2b_256(data: bytes) -> bytes:
    """blake2b with a 32-byte digest (substrate's `blake2_256`)."""
    return hashlib.blake2b(data, digest_size=32).digest()


def address_to_account_id(address: object) -> bytes:
    """Decode a KILT SS58 address (prefix 38) to its 32-byte account id.

    Only the canonical spelling is accepted (what `account_id_to_address` writes): no `0x` hex,
    no two-byte prefix form, no other checksum length, so one account has one address.
    """
    if not isinstance(address, str):
        raise InvalidDid(f"'{_clip(address)}' is not a KILT address (SS58, base58 characters)")
    return _account_id(address)


@functools.lru_cache(maxsize=4096)
def _account_id(address: str) -> bytes:
    """Cached: every login decodes the same few DIDs several times (a failure is not kept)."""
    if _BASE58.fullmatch(address) is None:
        raise InvalidDid(f"'{_clip(address)}' is not a KILT address (SS58, base58 characters)")
    try:
        raw = bytes.fromhex(ss58_decode(address, valid_ss58_format=KILT_SS58_PREFIX))
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidDid(f"'{_clip(address)}' is not a KILT address (SS58 prefix 38): {exc}"
                         ) from None
    if len(raw) != 32:
        raise InvalidDid(f"'{_clip(address)}' does not encode a 32-byte account id")
    if account_id_to_address(raw) != address:
        raise InvalidDid(f"'{_clip(address)}' is not the canonical SS58 spelling of its account")
    return raw


@functools.lru_cache(maxsize=4096)
def account_id_to_address(account_id: bytes) -> str:
    """Encode a 32-byte account id as a KILT SS58 address (prefix 38)."""
    return ss58_encode(account_id, ss58_format=KILT_SS58_PREFIX)


def _clip(value: object, limit: int = 64) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[:limit] + "…"

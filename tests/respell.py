"""Second spellings of one value (a DID's account, a DID-login token), as an attacker makes
them: each must be refused wherever the value enters."""

from __future__ import annotations

import base64
import hashlib

import base58

from opendid.kilt.dids import parse_full_did
from opendid.kilt.encoding import from_hex


def _ss58(prefix: bytes, account: bytes) -> str:
    checksum = hashlib.blake2b(b"SS58PRE" + prefix + account).digest()[:2]
    return base58.b58encode(prefix + account + checksum).decode()


def address_respellings(address: str) -> dict[str, str]:
    """Other spellings of a KILT address's account that lenient SS58 decoders accept."""
    account = parse_full_did("did:kilt:" + address).account_id
    # prefix 38 in the two-byte form: ((b0 & 0x3f) << 2) | (b1 >> 6) | ((b1 & 0x3f) << 8) == 38
    return {
        "two-byte prefix": _ss58(bytes([0x49, 0x80]), account),
        "0x hex": "0x" + account.hex(),
        "0x upper hex": "0x" + account.hex().upper(),
        "generic prefix 42": _ss58(bytes([42]), account),
        "leading space": " " + address,
        "trailing newline": address + "\n",
    }


def did_respellings(did: str) -> dict[str, str]:
    address = did.removeprefix("did:kilt:")
    spelled = {name: "did:kilt:" + other for name, other in address_respellings(address).items()}
    spelled["upper-case method"] = "did:KILT:" + address
    return spelled


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def token_respellings(token: str) -> dict[str, str]:
    """Every way to write the same DID-login token (same header, payload and signature) that a
    lenient decoder reads back as the original."""
    head, body, sig = token.split(".")
    signature_hex = base64.b64decode(sig).decode()
    raw = from_hex(signature_hex)
    spelled = {
        "upper-case hex": _b64(("0x" + raw.hex().upper()).encode()),
        "mixed-case hex": _b64(("0x" + raw.hex()[:10].upper() + raw.hex()[10:]).encode()),
        "ed25519 type byte on an sr25519 signature": _b64(("0x00" + raw.hex()).encode()),
        "ecdsa type byte on an sr25519 signature": _b64(("0x02" + raw.hex()).encode()),
        "unpadded signature": sig.rstrip("=") if sig.endswith("=") else sig + "=",
        "stray character in signature": sig[:8] + "!" + sig[8:],
        "whitespace in signature": sig[:8] + " " + sig[8:],
        "newline in signature": sig[:8] + "\n" + sig[8:],
        "urlsafe signature": sig.replace("+", "-").replace("/", "_"),
        "hex with whitespace": _b64(("0x" + raw.hex()[:20] + " " + raw.hex()[20:]).encode()),
    }
    variants = {name: f"{head}.{body}.{value}" for name, value in spelled.items()}
    variants["unpadded header and payload"] = f"{head.rstrip('=')}.{body.rstrip('=')}.{sig}"
    variants["stray character in payload"] = f"{head}.{body[:6]}*{body[6:]}.{sig}"
    variants["urlsafe header and payload"] = (
        f"{head.replace('+', '-').replace('/', '_')}.{body.replace('+', '-').replace('/', '_')}"
        f".{sig}")
    variants["non-canonical last base64 digit"] = f"{head}.{body}.{_bump_last(sig)}"
    return {name: value for name, value in variants.items() if value != token}


def typed_spelling(token: str, type_byte: int = 1) -> str:
    """The same token with its (sr25519) signature prefixed by its MultiSignature type byte: a
    form the wire contract allows, so it verifies, but it must be the same login as the raw
    one."""
    head, body, sig = token.split(".")
    raw = from_hex(base64.b64decode(sig).decode())
    return f"{head}.{body}.{_b64(('0x' + bytes([type_byte]).hex() + raw.hex()).encode())}"


def _bump_last(part: str) -> str:
    """Flip the unused low bits of the last base64 digit before the padding (same bytes)."""
    stripped = part.rstrip("=")
    pad = len(part) - len(stripped)
    if pad == 0:
        return part + "="
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return stripped[:-1] + alphabet[alphabet.index(stripped[-1]) ^ 1] + "=" * pad

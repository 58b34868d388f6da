"""NaCl boxes and DID-key signature verification (sr25519, ed25519, ecdsa).

Signatures come raw, as KILT's SDK and Sporran write them (64 bytes for sr25519/ed25519, 65 =
r ‖ s ‖ recovery id for ecdsa), or prefixed with their MultiSignature type byte (0 = ed25519,
1 = sr25519, 2 = ecdsa), which the wire contract allows and the original accepts. The type byte
must match the key and is stripped: `verify_signature` returns the raw signature that verified,
so callers key replay caches on it and both spellings of one signature are one use. No high-S
ecdsa twin is accepted. KILT's ecdsa keys are secp256k1 over blake2b-256 of the message
(substrate's scheme), not Ethereum's keccak.
"""

from __future__ import annotations

import functools
import os

import coincurve
import nacl.exceptions
import nacl.public
import nacl.signing
import sr25519

from opendid.kilt.encoding import blake2b_256
from opendid.kilt.errors import DecryptionFailed, InvalidSignature

NONCE_LENGTH = 24
KEY_LENGTH = 32
SIGNATURE_LENGTHS = {"ed25519": 64, "sr25519": 64, "ecdsa": 65}
MULTISIG_TYPES = {"ed25519": 0, "sr25519": 1, "ecdsa": 2}
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@functools.lru_cache(maxsize=16)
def _private_key(secret: bytes) -> nacl.public.PrivateKey:
    """A NaCl private key, made once per secret: making one derives its public key (a scalar
    multiplication), which every box with the service's key would otherwise repeat."""
    return nacl.public.PrivateKey(secret)


def box_encrypt(
    plaintext: bytes, our_secret: bytes, their_public: bytes, nonce: bytes | None = None
) -> tuple[bytes, bytes]:
    """Seal `plaintext` to `their_public`; returns (ciphertext without nonce, nonce)."""
    nonce = nonce if nonce is not None else os.urandom(NONCE_LENGTH)
    box = nacl.public.Box(_private_key(our_secret), nacl.public.PublicKey(their_public))
    return box.encrypt(plaintext, nonce).ciphertext, nonce


def box_decrypt(ciphertext: bytes, nonce: bytes, our_secret: bytes, their_public: bytes) -> bytes:
    """Open a box made by `their_public` for us; any failure is a `DecryptionFailed`."""
    if len(nonce) != NONCE_LENGTH or len(their_public) != KEY_LENGTH:
        raise DecryptionFailed("nonce must be 24 bytes and the sender key 32 bytes")
    try:
        box = nacl.public.Box(_private_key(our_secret), nacl.public.PublicKey(their_public))
        return box.decrypt(ciphertext, nonce)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionFailed("the message does not open with the session keys") from None


def x25519_public_key(secret: bytes) -> bytes:
    """The x25519 public key of a 32-byte secret."""
    return bytes(nacl.public.PrivateKey(secret).public_key)


def raw_signature(key_type: str, signature: bytes) -> bytes:
    """The raw signature: as given, or without its MultiSignature type byte, which must name
    `key_type`. Anything else is `InvalidSignature`."""
    expected = SIGNATURE_LENGTHS.get(key_type) if isinstance(key_type, str) else None
    if expected is None:
        raise InvalidSignature(f"unsupported key type '{key_type}'")
    if not isinstance(signature, bytes):
        raise InvalidSignature("a signature must be bytes")
    if len(signature) == expected + 1:
        if signature[0] != MULTISIG_TYPES[key_type]:
            raise InvalidSignature(f"the signature's type byte {signature[0]} does not name a "
                                   f"{key_type} key")
        signature = signature[1:]
    if len(signature) != expected:
        raise InvalidSignature(f"a {key_type} signature must be {expected} bytes (or 1 more "
                               "with its MultiSignature type byte)")
    return signature


def verify_signature(key_type: str, public_key: bytes, message: bytes, signature: bytes) -> bytes:
    """The raw signature (see `raw_signature`) by `public_key` over `message`, once it verifies;
    `InvalidSignature` otherwise."""
    raw = raw_signature(key_type, signature)
    if key_type == "ecdsa" and not _canonical_ecdsa(raw):
        raise InvalidSignature("an ecdsa signature must have a low S and a recovery id of 0 or 1")
    if not isinstance(public_key, bytes) or not isinstance(message, bytes):
        raise InvalidSignature("the key and the message must be bytes")
    if not _verify_raw(key_type, public_key, message, raw):
        raise InvalidSignature("the signature does not verify")
    return raw


def _canonical_ecdsa(signature: bytes) -> bool:
    """(r, s, v) and (r, n - s, v ^ 1) both verify: only the low-S one (what substrate and
    polkadot.js write) is accepted."""
    s = int.from_bytes(signature[32:64], "big")
    return 0 < s <= SECP256K1_ORDER // 2 and signature[64] in (0, 1)


def _verify_raw(key_type: str, public_key: bytes, message: bytes, raw: bytes) -> bool:
    try:
        if key_type == "sr25519":
            return bool(sr25519.verify(raw, message, public_key))
        if key_type == "ed25519":
            nacl.signing.VerifyKey(public_key).verify(message, raw)
            return True
        if key_type == "ecdsa":
            recovered = coincurve.PublicKey.from_signature_and_message(
                raw, message, hasher=blake2b_256
            )
            return recovered.format(compressed=True) == public_key
    except Exception:  # every library raises its own types for keys or bytes it cannot use
        return False
    return False

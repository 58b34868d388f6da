"""NaCl boxes and DID-key signature verification (sr25519, ed25519, ecdsa).

Signatures come raw or prefixed with their MultiSignature type byte
(0 = ed25519, 1 = sr25519, 2 = ecdsa); KILT's ecdsa keys are secp256k1 over blake2b-256 of the
message (substrate's scheme), not Ethereum's keccak.
"""

from __future__ import annotations

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
MULTISIG_TYPES = {0: "ed25519", 1: "sr25519", 2: "ecdsa"}
SIGNATURE_LENGTHS = {"ed25519": 64, "sr25519": 64, "ecdsa": 65}


def box_encrypt(
    plaintext: bytes, our_secret: bytes, their_public: bytes, nonce: bytes | None = None
) -> tuple[bytes, bytes]:
    """Seal `plaintext` to `their_public`; returns (ciphertext without nonce, nonce)."""
    nonce = nonce if nonce is not None else os.urandom(NONCE_LENGTH)
    box = nacl.public.Box(nacl.public.PrivateKey(our_secret), nacl.public.PublicKey(their_public))
    return box.encrypt(plaintext, nonce).ciphertext, nonce


def box_decrypt(ciphertext: bytes, nonce: bytes, our_secret: bytes, their_public: bytes) -> bytes:
    """Open a box made by `their_public` for us; any failure is a `DecryptionFailed`."""
    if len(nonce) != NONCE_LENGTH or len(their_public) != KEY_LENGTH:
        raise DecryptionFailed("nonce must be 24 bytes and the sender key 32 bytes")
    try:
        box = nacl.public.Box(
            nacl.public.PrivateKey(our_secret), nacl.public.PublicKey(their_public)
        )
        return box.decrypt(ciphertext, nonce)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionFailed("the message does not open with the session keys") from None


def x25519_public_key(secret: bytes) -> bytes:
    """The x25519 public key of a 32-byte secret."""
    return bytes(nacl.public.PrivateKey(secret).public_key)


def split_signature(signature: bytes, key_type: str) -> bytes:
    """Strip a MultiSignature type byte when present; check it matches the key type."""
    expected = SIGNATURE_LENGTHS.get(key_type)
    if expected is None:
        raise InvalidSignature(f"unsupported key type '{key_type}'")
    if len(signature) == expected:
        return signature
    if len(signature) == expected + 1:
        prefixed_type = MULTISIG_TYPES.get(signature[0])
        if prefixed_type != key_type:
            raise InvalidSignature(
                f"signature is typed {prefixed_type or signature[0]}, but the key is {key_type}"
            )
        return signature[1:]
    raise InvalidSignature(f"a {key_type} signature must be {expected} bytes (or 1 more typed)")


def verify_signature(key_type: str, public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise `InvalidSignature` unless `signature` by `public_key` over `message` verifies."""
    raw = split_signature(signature, key_type)
    if not _verify_raw(key_type, public_key, message, raw):
        raise InvalidSignature("the signature does not verify")


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
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError, Exception):
        return False
    return False

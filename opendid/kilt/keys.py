"""DID keys derived from a mnemonic the way Sporran does, and DID key ids.

authentication   sr25519 at ``<mnemonic>//did//0``
assertionMethod  sr25519 at ``<mnemonic>//did//assertion//0``
keyAgreement     x25519 secret = blake2b-256 of the sr25519 secret at
                 ``//did//keyAgreement//0`` serialised as polkadot.js does (scalar × 8 ‖ nonce)
"""

from __future__ import annotations

from dataclasses import dataclass

from substrateinterface import Keypair, KeypairType

from opendid.kilt.crypto import x25519_public_key
from opendid.kilt.dids import FullDid, KeyUri, full_did_from_account
from opendid.kilt.encoding import KILT_SS58_PREFIX, blake2b_256
from opendid.kilt.errors import InvalidDid

VERIFICATION_KEY_TYPES = {"ed25519": 0, "sr25519": 1, "ecdsa": 2}
ENCRYPTION_KEY_TYPES = {"x25519": 0}


def verification_key_id(key_type: str, public_key: bytes) -> bytes:
    """Key id of a verification key: blake2b-256 of SCALE(DidPublicKey::PublicVerificationKey)."""
    code = VERIFICATION_KEY_TYPES.get(key_type) if isinstance(key_type, str) else None
    if code is None or not isinstance(public_key, bytes):
        raise InvalidDid(f"unknown verification key type {key_type!r}")
    return blake2b_256(bytes([0, code]) + public_key)


def encryption_key_id(public_key: bytes) -> bytes:
    """Key id of an x25519 key: blake2b-256 of SCALE(DidPublicKey::PublicEncryptionKey)."""
    return blake2b_256(bytes([1, ENCRYPTION_KEY_TYPES["x25519"]]) + public_key)


def sr25519_keypair(suri: str) -> Keypair:
    """An sr25519 keypair from a substrate secret URI (mnemonic or 0x seed plus junctions)."""
    return Keypair.create_from_uri(
        suri, ss58_format=KILT_SS58_PREFIX, crypto_type=KeypairType.SR25519
    )


def key_agreement_secret(mnemonic: str, path: str = "//did//keyAgreement//0") -> bytes:
    """Sporran's x25519 secret for a mnemonic (see the module docstring for the recipe)."""
    derived = sr25519_keypair(mnemonic + path).private_key
    scalar = (int.from_bytes(derived[:32], "little") * 8).to_bytes(32, "little")
    return blake2b_256(scalar + derived[32:])


@dataclass(frozen=True)
class DidKeys:
    """The keys of one full DID held by its controller (a wallet, an attester, the service)."""

    mnemonic: str
    authentication: Keypair
    assertion: Keypair
    key_agreement_secret: bytes

    @classmethod
    def from_mnemonic(cls, mnemonic: str) -> DidKeys:
        return cls(
            mnemonic=mnemonic,
            authentication=sr25519_keypair(mnemonic + "//did//0"),
            assertion=sr25519_keypair(mnemonic + "//did//assertion//0"),
            key_agreement_secret=key_agreement_secret(mnemonic),
        )

    @classmethod
    def generate(cls) -> DidKeys:
        return cls.from_mnemonic(Keypair.generate_mnemonic(words=12))

    @property
    def did(self) -> FullDid:
        return full_did_from_account(self.authentication.public_key)

    @property
    def key_agreement_public(self) -> bytes:
        return x25519_public_key(self.key_agreement_secret)

    @property
    def authentication_key_uri(self) -> KeyUri:
        return KeyUri(self.did, verification_key_id("sr25519", self.authentication.public_key))

    @property
    def assertion_key_uri(self) -> KeyUri:
        return KeyUri(self.did, verification_key_id("sr25519", self.assertion.public_key))

    @property
    def key_agreement_key_uri(self) -> KeyUri:
        return KeyUri(self.did, encryption_key_id(self.key_agreement_public))

"""NaCl boxes, signatures and Sporran key derivation against the SDK's vectors."""

import hashlib

import coincurve
import nacl.signing
import pytest

from opendid.kilt.crypto import box_decrypt, box_encrypt, verify_signature, x25519_public_key
from opendid.kilt.encoding import blake2b_256, from_hex
from opendid.kilt.errors import DecryptionFailed, InvalidHex, InvalidSignature
from opendid.kilt.keys import DidKeys, encryption_key_id, verification_key_id


def test_sporran_key_derivation_matches_the_sdk(vectors):
    for case in vectors["key-derivation"]["cases"]:
        keys = DidKeys.from_mnemonic(case["mnemonic"])
        assert keys.did.uri == case["did"]
        assert keys.authentication.public_key == from_hex(case["authentication"]["publicKey"])
        assert keys.key_agreement_secret == from_hex(case["keyAgreement"]["x25519SecretKey"])
        assert keys.key_agreement_public == from_hex(case["keyAgreement"]["x25519PublicKey"])
        assert keys.assertion.public_key == from_hex(case["assertionMethod"]["publicKey"])
        assert verification_key_id("sr25519", keys.authentication.public_key) == from_hex(
            case["authentication"]["keyId"])
        assert encryption_key_id(keys.key_agreement_public) == from_hex(
            case["keyAgreement"]["keyId"])
        assert keys.authentication_key_uri.uri.endswith(case["authentication"]["keyId"])


def test_nacl_boxes_match_the_sdk(vectors):
    for case in vectors["nacl-box"]["cases"]:
        sender_secret = from_hex(case["sender"]["x25519SecretKey"])
        receiver_secret = from_hex(case["receiver"]["x25519SecretKey"])
        sender_public = from_hex(case["sender"]["x25519PublicKey"])
        receiver_public = from_hex(case["receiver"]["x25519PublicKey"])
        assert x25519_public_key(sender_secret) == sender_public
        nonce = from_hex(case["nonce"])
        plaintext = from_hex(case["plaintextHex"])
        ciphertext, _ = box_encrypt(plaintext, sender_secret, receiver_public, nonce)
        assert ciphertext == from_hex(case["ciphertext"])
        assert box_decrypt(ciphertext, nonce, receiver_secret, sender_public) == plaintext


def test_box_with_wrong_key_or_tampered_ciphertext_fails(vectors):
    case = vectors["nacl-box"]["cases"][0]
    ciphertext = bytearray(from_hex(case["ciphertext"]))
    nonce = from_hex(case["nonce"])
    receiver_secret = from_hex(case["receiver"]["x25519SecretKey"])
    sender_public = from_hex(case["sender"]["x25519PublicKey"])
    with pytest.raises(DecryptionFailed):
        box_decrypt(bytes(ciphertext), nonce, receiver_secret, b"\x01" * 32)
    ciphertext[20] ^= 1
    with pytest.raises(DecryptionFailed):
        box_decrypt(bytes(ciphertext), nonce, receiver_secret, sender_public)
    with pytest.raises(DecryptionFailed):
        box_decrypt(bytes(ciphertext), b"short", receiver_secret, sender_public)


def test_sr25519_presentation_signature_of_the_sdk_verifies(vectors):
    case = vectors["credential"]["presentation"]
    public = from_hex(case["signer"]["publicKey"])
    signature = from_hex(case["presentation"]["claimerSignature"]["signature"])
    data = from_hex(case["signingData"])
    verify_signature("sr25519", public, data, signature)
    with pytest.raises(InvalidSignature):
        verify_signature("sr25519", public, data[:-1] + b"\x00", signature)
    with pytest.raises(InvalidSignature):
        verify_signature("sr25519", public, data, signature[:10])


def test_a_type_byte_is_checked_and_stripped(vectors):
    """The contract allows a MultiSignature type byte before the signature; it must name the
    key's type, and the raw signature that verified comes back (replay caches key on it)."""
    case = vectors["credential"]["presentation"]
    public = from_hex(case["signer"]["publicKey"])
    signature = from_hex(case["presentation"]["claimerSignature"]["signature"])
    data = from_hex(case["signingData"])
    assert verify_signature("sr25519", public, data, signature) == signature
    assert verify_signature("sr25519", public, data, b"\x01" + signature) == signature
    for wrong in (b"\x00", b"\x02", b"\x03"):
        with pytest.raises(InvalidSignature, match="type byte"):
            verify_signature("sr25519", public, data, wrong + signature)
    with pytest.raises(InvalidSignature):
        verify_signature("sr25519", public, data, b"\x01\x01" + signature)


def test_ed25519_signatures():
    key = nacl.signing.SigningKey.generate()
    public = bytes(key.verify_key)
    signature = key.sign(b"message").signature
    assert verify_signature("ed25519", public, b"message", signature) == signature
    assert verify_signature("ed25519", public, b"message", b"\x00" + signature) == signature
    with pytest.raises(InvalidSignature):
        verify_signature("ed25519", public, b"message", b"\x01" + signature)
    with pytest.raises(InvalidSignature):
        verify_signature("ed25519", public, b"other", signature)


def test_ecdsa_signatures_are_substrate_style_blake2():
    key = coincurve.PrivateKey()
    public = key.public_key.format(compressed=True)
    signature = key.sign_recoverable(b"message", hasher=blake2b_256)
    assert verify_signature("ecdsa", public, b"message", signature) == signature
    assert verify_signature("ecdsa", public, b"message", b"\x02" + signature) == signature
    with pytest.raises(InvalidSignature):
        verify_signature("ecdsa", public, b"message", b"\x01" + signature)
    keccak_style = key.sign_recoverable(b"message", hasher=lambda m: hashlib.sha3_256(m).digest())
    with pytest.raises(InvalidSignature):
        verify_signature("ecdsa", public, b"message", keccak_style)


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_the_high_s_twin_of_an_ecdsa_signature_is_refused():
    """(r, n - s, v ^ 1) verifies like (r, s, v) in libsecp256k1's recovery: it is the same
    signature spelled twice, so only the low-S form (what substrate writes) is accepted."""
    key = coincurve.PrivateKey()
    public = key.public_key.format(compressed=True)
    signature = key.sign_recoverable(b"message", hasher=blake2b_256)
    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([signature[64] ^ 1])
    recovered = coincurve.PublicKey.from_signature_and_message(twin, b"message",
                                                                hasher=blake2b_256)
    assert recovered.format(compressed=True) == public  # the library alone would accept it
    with pytest.raises(InvalidSignature, match="low S"):
        verify_signature("ecdsa", public, b"message", twin)
    with pytest.raises(InvalidSignature, match="low S"):
        verify_signature("ecdsa", public, b"message", signature[:64] + bytes([27]))


def test_hex_parsing_is_strict():
    assert from_hex("0x0102", 2) == b"\x01\x02"
    for bad in ("0102", "0xzz", 12, None, "0x010"):
        with pytest.raises(InvalidHex):
            from_hex(bad)
    with pytest.raises(InvalidHex):
        from_hex("0x01", 2)


@pytest.mark.parametrize("respelled", ["0xABCD", "0xAbcd", "0x ab cd", "0xab cd", "0xabcd\n",
                                       "0xab\tcd", "0Xabcd", "0x٠١"])
def test_hex_has_one_spelling(respelled):
    """`bytes.fromhex` alone accepts upper case and whitespace: KILT writes lowercase only."""
    assert from_hex("0xabcd") == b"\xab\xcd"
    with pytest.raises(InvalidHex):
        from_hex(respelled)

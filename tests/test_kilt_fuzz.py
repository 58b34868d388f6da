"""Property-based fuzzing of every parser in `opendid/kilt/`: whatever comes in (bytes, unicode,
huge numbers, wrong types, deep nesting, hex/base58/base64 edge cases, SS58 variants), a parser
returns or raises its module's typed error (a `KiltError`), never anything else; and canonical
values round-trip while every second spelling of one is refused.

Deterministic (`derandomize=True`) and bounded (`max_examples`), so CI is neither flaky nor slow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import base58
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opendid.kilt import chain as chain_module
from opendid.kilt.credentials import (
    make_credential,
    make_presentation,
    parse_presentation,
    root_hash,
    signing_data,
    verify_data_integrity,
)
from opendid.kilt.crypto import box_decrypt, box_encrypt, verify_signature, x25519_public_key
from opendid.kilt.didjwt import (
    DidJwt,
    check_claims,
    make_did_jwt,
    parse_did_jwt,
    unsigned_did_jwt,
    verify_did_signature,
)
from opendid.kilt.didjwt import signing_data as jwt_signing_data
from opendid.kilt.dids import (
    full_did_from_account,
    light_did_encryption_key,
    make_light_did,
    parse_full_did,
    parse_key_uri,
    parse_light_did,
)
from opendid.kilt.encoding import (
    account_id_to_address,
    address_to_account_id,
    from_hex,
    to_hex,
)
from opendid.kilt.errors import KiltError
from opendid.kilt.keys import DidKeys, verification_key_id
from opendid.kilt.messages import (
    EncryptedMessage,
    open_json,
    parse_envelope,
    parse_request_credential,
    parse_submit_credential,
)
from tests.respell import address_respellings, token_respellings, typed_spelling
from tests.test_didjwt import KEYS, NONCE, document

FUZZ = settings(max_examples=80, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=25)

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
HEXISH = "0123456789abcdefABCDEF xX\n\t"
BASE64ISH = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_. %!\n"


def only_typed(parse: Callable[..., Any], *args: Any) -> Any:
    """Call a parser; its typed error is fine, any other exception fails the property."""
    try:
        return parse(*args)
    except KiltError:
        return None


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300)
           | st.floats() | st.text() | st.binary())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=16,
)
anything = (scalars | json_values | st.integers(1, 120).map(nested)
            | st.lists(scalars, max_size=3) | st.dictionaries(st.text(), scalars, max_size=3))
accounts = st.binary(min_size=32, max_size=32)


def ss58_of(prefix: bytes, payload: bytes, checksum_length: int = 2) -> str:
    checksum = hashlib.blake2b(b"SS58PRE" + prefix + payload).digest()[:checksum_length]
    return base58.b58encode(prefix + payload + checksum).decode()


ss58_variants = st.builds(
    ss58_of,
    st.sampled_from([b"\x26", b"\x2a", b"\x00", b"\x49\x80", b"\x40\x00", b"\x7f\xff", b""]),
    st.binary(min_size=0, max_size=40),
    st.integers(0, 8),
)
addresses = (ss58_variants | st.text(alphabet=BASE58, max_size=60) | st.text(max_size=60)
             | accounts.map(lambda a: "0x" + a.hex()))
did_like = (addresses.map(lambda a: "did:kilt:" + a)
            | st.tuples(addresses, st.text(alphabet=HEXISH, max_size=70)).map(
                lambda p: f"did:kilt:{p[0]}#{p[1]}")
            | st.tuples(st.sampled_from(["00", "01", "02", ""]), addresses,
                        st.text(alphabet=BASE58 + "z:0", max_size=80)).map(
                lambda p: f"did:kilt:light:{p[0]}{p[1]}:{p[2]}")
            | st.text())


# -- dids and encoding ------------------------------------------------------------------------

@FUZZ
@given(did_like | anything)
def test_did_parsers_raise_only_their_typed_error(value):
    for parse in (parse_full_did, parse_key_uri, parse_light_did, light_did_encryption_key):
        only_typed(parse, value)


@FUZZ
@given(addresses | anything)
def test_address_decoding_raises_only_its_typed_error(value):
    account = only_typed(address_to_account_id, value)
    if account is not None:  # anything accepted is the canonical spelling of a 32-byte account
        assert len(account) == 32 and account_id_to_address(account) == value


@FUZZ
@given(st.text(alphabet=HEXISH, max_size=80) | st.from_regex(r"0x[0-9a-f]*", fullmatch=True)
       | anything, st.none() | st.integers(0, 40))
def test_hex_decoding_raises_only_its_typed_error(value, length):
    raw = only_typed(from_hex, value, length)
    if raw is not None:
        assert to_hex(raw) == value  # accepted only in the one spelling `to_hex` writes


@FUZZ
@given(accounts)
def test_a_canonical_did_round_trips_and_no_other_spelling_is_accepted(account):
    did = full_did_from_account(account)
    assert parse_full_did(did.uri) == did and parse_full_did(did.uri).uri == did.uri
    assert parse_key_uri(f"{did.uri}#0x{account.hex()}").did == did
    for spelled in address_respellings(did.address).values():
        with pytest.raises(KiltError):
            parse_full_did("did:kilt:" + spelled)
        with pytest.raises(KiltError):
            parse_light_did(f"did:kilt:light:00{spelled}")


@FUZZ
@given(accounts, accounts, st.sampled_from(["sr25519", "ed25519"]))
def test_a_made_light_did_round_trips(auth, encryption, key_type):
    uri = make_light_did(key_type, auth, encryption)
    light = parse_light_did(uri + "#encryption")
    assert (light.auth_public_key, light.encryption_key, light.auth_key_type) == (
        auth, encryption, key_type)
    assert light_did_encryption_key(uri) == encryption
    assert parse_light_did(light.uri).address == account_id_to_address(auth)


@FUZZ
@given(st.binary(max_size=200) | st.recursive(
    st.none() | st.integers() | st.binary(max_size=40) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                  max_size=3), max_leaves=10))
def test_light_did_details_of_any_cbor_raise_only_the_typed_error(details):
    import cbor2

    raw = details if isinstance(details, bytes) else cbor2.dumps(details)
    address = account_id_to_address(b"\x01" * 32)
    for version in (b"\x00", b"\x01", b""):
        encoded = "z" + base58.b58encode(version + raw).decode()
        only_typed(parse_light_did, f"did:kilt:light:00{address}:{encoded}")


# -- DID-only login tokens ----------------------------------------------------------------------

def _part(value: Any) -> str:
    return base64.b64encode(json.dumps(value, default=repr).encode()).decode()


tokens = (st.text(alphabet=BASE64ISH, max_size=300) | st.text(max_size=100)
          | st.tuples(json_values, json_values, st.text(alphabet=BASE64ISH, max_size=200)).map(
              lambda p: f"{_part(p[0])}.{_part(p[1])}.{p[2]}")
          | st.tuples(st.text(alphabet=BASE64ISH, max_size=80),
                      st.text(alphabet=BASE64ISH, max_size=80),
                      st.text(alphabet=BASE64ISH, max_size=80)).map(".".join)
          | anything)


@FUZZ
@given(tokens)
def test_token_parsing_raises_only_its_typed_error(value):
    parsed = only_typed(parse_did_jwt, value)
    if parsed is not None:
        only_typed(check_claims, parsed, NONCE)
        only_typed(verify_did_signature, parsed, document())


@FUZZ
@given(st.dictionaries(st.sampled_from(["iss", "sub", "exp", "nbf", "nonce", "kid"]),
                       anything, max_size=6))
def test_claim_checks_raise_only_their_typed_error(payload):
    token = DidJwt({}, payload, "a.b", b"", KEYS.authentication_key_uri)
    only_typed(check_claims, token, NONCE)
    good = {"iss": KEYS.did.uri, "sub": KEYS.did.uri, "nonce": NONCE,
            "exp": int(time.time()) + 60, "nbf": int(time.time())}
    only_typed(check_claims, DidJwt({}, {**good, **payload}, "a.b", b"",
                                    KEYS.authentication_key_uri), NONCE)


finite_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8,
)


@FEW
@given(st.dictionaries(st.text(max_size=5), finite_json, max_size=3),
       st.integers(0, 100), st.integers(0, 200))
def test_a_signed_token_round_trips_and_every_respelling_is_refused(extra, lifetime, age):
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": KEYS.authentication_key_uri.uri}
    payload = {**extra, "iss": KEYS.did.uri, "sub": KEYS.did.uri, "nonce": NONCE,
               "nbf": now - age, "exp": now + lifetime}
    unsigned = unsigned_did_jwt(header, payload)
    signature = KEYS.authentication.sign(jwt_signing_data(unsigned).encode("ascii"))
    token = make_did_jwt(unsigned, to_hex(signature))
    parsed = parse_did_jwt(token)
    assert (parsed.header, parsed.payload, parsed.signature) == (header, payload, signature)
    check_claims(parsed, NONCE)
    key = verify_did_signature(parsed, document())
    assert verify_did_signature(parse_did_jwt(typed_spelling(token)), document()) == key
    for variant in token_respellings(token).values():
        with pytest.raises(KiltError):
            respelled = parse_did_jwt(variant)
            check_claims(respelled, NONCE)
            verify_did_signature(respelled, document())


@pytest.mark.parametrize("depth", [500, 3000, 100_000])
def test_deep_nesting_anywhere_is_a_typed_error(depth):
    """Built inside the test: too deep for hypothesis to print, not too deep to parse."""
    deep = nested(depth)
    for parse in (parse_full_did, parse_key_uri, parse_light_did, parse_envelope,
                  parse_submit_credential, parse_request_credential, parse_presentation):
        only_typed(parse, deep)
    only_typed(check_claims, DidJwt({}, {"iss": deep, "sub": deep, "exp": deep},
                                    "a.b", b"", KEYS.authentication_key_uri), NONCE)
    data = json.loads(json.dumps(PRESENTED))
    data["claim"]["contents"]["Email"] = deep
    presentation = only_typed(parse_presentation, data)
    if presentation is not None:
        only_typed(verify_data_integrity, presentation)
    body = b"[" * depth + b"]" * depth
    only_typed(parse_did_jwt, f"{_part({})}.{base64.b64encode(body[:6000]).decode()}.AA==")
    only_typed(open_json, _sealed(body), SECRET, PEER.key_agreement_public)


# -- signatures, boxes, keys --------------------------------------------------------------------

@FUZZ
@given(st.sampled_from(["sr25519", "ed25519", "ecdsa", "x25519", ""]) | anything,
       st.binary(max_size=70) | anything, st.binary(max_size=64),
       st.binary(max_size=70) | anything)
def test_signature_verification_raises_only_its_typed_error(key_type, public, message, sig):
    only_typed(verify_signature, key_type, public, message, sig)


@FUZZ
@given(st.binary(max_size=64), st.sampled_from([0, 2, 27, 255]))
def test_a_wrongly_typed_or_padded_signature_is_refused(message, type_byte):
    """Only the sr25519 type byte (1) may stand before an sr25519 signature; it is stripped."""
    signature = KEYS.authentication.sign(message)
    public = KEYS.authentication.public_key
    assert verify_signature("sr25519", public, message, signature) == signature
    assert verify_signature("sr25519", public, message, b"\x01" + signature) == signature
    for spelled in (bytes([type_byte]) + signature, signature + b"\x00", signature[:-1],
                    b"\x01\x01" + signature):
        with pytest.raises(KiltError):
            verify_signature("sr25519", public, message, spelled)


@FUZZ
@given(st.binary(max_size=120), st.binary(max_size=30), st.binary(max_size=40))
def test_box_opening_raises_only_its_typed_error(ciphertext, nonce, public):
    only_typed(box_decrypt, ciphertext, nonce, b"\x01" * 32, public)


@FUZZ
@given(anything, st.binary(max_size=40))
def test_key_ids_of_unknown_types_are_a_typed_error(key_type, public):
    only_typed(verification_key_id, key_type, public)


# -- messages and credentials ---------------------------------------------------------------------

@FUZZ
@given(st.fixed_dictionaries({}, optional={
    "ciphertext": st.text(alphabet=HEXISH, max_size=60) | anything,
    "nonce": st.text(alphabet=HEXISH, max_size=60) | anything,
    "senderKeyUri": did_like | anything,
    "receiverKeyUri": did_like | anything,
}) | anything)
def test_envelope_parsing_raises_only_its_typed_error(value):
    only_typed(parse_envelope, value)


SECRET, PEER = b"\x02" * 32, DidKeys.from_mnemonic(
    "legal winner thank year wave sausage worth useful legal winner thank yellow")


def _sealed(plaintext: bytes) -> EncryptedMessage:
    """`plaintext` boxed by PEER for SECRET, as a wallet would send it."""
    ciphertext, nonce = box_encrypt(plaintext, PEER.key_agreement_secret,
                                    x25519_public_key(SECRET))
    return EncryptedMessage(ciphertext=to_hex(ciphertext), nonce=to_hex(nonce),
                            senderKeyUri="x", receiverKeyUri="y")


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.integers(1, 120).map(lambda d: b"[" * d + b"]" * d)
       | st.integers(4300, 6000).map(lambda n: b"1" * n))
def test_opening_a_message_raises_only_its_typed_error(plaintext):
    message = only_typed(open_json, _sealed(plaintext), SECRET, PEER.key_agreement_public)
    if message is not None:
        only_typed(parse_submit_credential, message)


CREDENTIAL = make_credential("0x" + "ab" * 32, {"Email": "a@example.org"}, KEYS.did.uri)
PRESENTED = make_presentation(CREDENTIAL, KEYS.authentication_key_uri.uri,
                              KEYS.authentication.sign, "0x" + "5a" * 24)
FIELDS = ["claim", "claimHashes", "claimNonceMap", "rootHash", "delegationId", "legitimations",
          "claimerSignature"]


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), anything, max_size=3),
       st.dictionaries(st.sampled_from(["cTypeHash", "contents", "owner"]), anything, max_size=2))
def test_presentation_checks_raise_only_their_typed_error(fields, claim):
    data = json.loads(json.dumps(PRESENTED))
    data.update(fields)
    if isinstance(data.get("claim"), dict):
        data["claim"].update(claim)
    presentation = only_typed(parse_presentation, data)
    if presentation is not None:
        only_typed(verify_data_integrity, presentation)
        only_typed(signing_data, presentation.rootHash, presentation.claimerSignature.challenge)
    message = {"body": {"type": "submit-credential", "content": [data]}, "sender": "x"}
    only_typed(parse_submit_credential, message)


@FUZZ
@given(st.lists(st.text(alphabet=HEXISH, max_size=70), max_size=4),
       st.lists(st.text(alphabet=HEXISH, max_size=70), max_size=2),
       st.none() | st.text(alphabet=HEXISH, max_size=70))
def test_root_hash_raises_only_its_typed_error(hashes, legitimations, delegation):
    only_typed(root_hash, hashes, legitimations, delegation)


@FUZZ
@given(anything | st.fixed_dictionaries({"body": st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["request-credential", "x"]) | anything,
    "content": st.fixed_dictionaries({}, optional={"cTypes": anything, "challenge": anything})
    | anything})}))
def test_request_parsing_raises_only_its_typed_error(value):
    only_typed(parse_request_credential, value)


# -- chain records ------------------------------------------------------------------------------

def _record(value: Any) -> SimpleNamespace:
    return SimpleNamespace(value=value)


@FUZZ
@given(anything | st.fixed_dictionaries({}, optional={
    "public_keys": anything | st.lists(st.tuples(st.text(alphabet=HEXISH, max_size=70),
                                                 anything), max_size=2),
    "authentication_key": st.text(alphabet=HEXISH, max_size=70) | anything,
    "key_agreement_keys": anything, "attestation_key": anything, "delegation_key": anything,
    "last_tx_counter": anything, "ctype_hash": anything, "attester": addresses | anything,
    "revoked": anything}))
def test_decoded_chain_records_of_the_wrong_shape_are_a_typed_error(value):
    did = full_did_from_account(b"\x03" * 32)
    only_typed(chain_module.did_document_from_storage, did, _record(value))
    only_typed(chain_module.attestation_from_storage, "0x" + "00" * 32, _record(value))
    only_typed(chain_module.web3name_from_storage, _record(value))


@settings(FUZZ, max_examples=60)
@given(st.binary(max_size=200))
def test_storage_bytes_that_do_not_decode_are_a_typed_error(chain, raw):
    """What a broken or hostile node could answer for `Did.Did` and an attestation."""
    address = account_id_to_address(b"\x03" * 32)
    for pallet, item, key in (("Did", "Did", address),
                              ("Attestation", "Attestations", "0x" + "00" * 32),
                              ("Web3Names", "Names", address)):
        value = only_typed(chain.decode, pallet, item, key, to_hex(raw))
        if value is not None and pallet == "Did":
            only_typed(chain_module.did_document_from_storage,
                       full_did_from_account(b"\x03" * 32), value)

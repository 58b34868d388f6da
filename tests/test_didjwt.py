"""DID-only login tokens, offline: one spelling per token, bounded lifetime, iss/sub/kid bound
to one canonical DID, and single use by what was signed (not by the string received)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
from dataclasses import dataclass
from typing import Any

import pytest

from opendid.kilt.chain import DidDocument, DidKey
from opendid.kilt.didjwt import (
    DidJwtInvalid,
    check_claims,
    make_did_jwt,
    parse_did_jwt,
    replay_key,
    signing_data,
    unsigned_did_jwt,
    verify_did_signature,
)
from opendid.kilt.encoding import to_hex
from opendid.kilt.errors import InvalidSignature
from opendid.kilt.keys import DidKeys
from tests.respell import did_respellings, token_respellings, typed_spelling

NONCE = "n0nce"


@dataclass(frozen=True)
class Relative:
    """A time relative to the moment a token is made (parameters are built at collection,
    minutes before a test may run)."""

    offset: int

    def __add__(self, seconds: int) -> Relative:
        return Relative(self.offset + seconds)

    def __sub__(self, seconds: int) -> Relative:
        return Relative(self.offset - seconds)


NOW = Relative(0)


def resolve(claims: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return {k: now + v.offset if isinstance(v, Relative) else v for k, v in claims.items()}
KEYS = DidKeys.from_mnemonic(
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk")


def document(keys: DidKeys = KEYS) -> DidDocument:
    """The DID document the chain would return for `keys` (only what verification reads)."""
    auth = DidKey(keys.authentication_key_uri.key_id, "sr25519", keys.authentication.public_key)
    return DidDocument(did=keys.did, authentication=auth, key_agreement=(),
                       assertion_method=None, capability_delegation=None,
                       keys={auth.id: auth}, last_tx_counter=0)


def token(keys: DidKeys = KEYS, header: dict[str, Any] | None = None,
          signer: DidKeys | None = None, **claims: Any) -> str:
    """A token as the login page builds it and the wallet signs it."""
    now = int(time.time())
    did = keys.did.uri
    head = {"alg": "EdDSA", "typ": "JWT", "crv": "Ed25519",
            "kid": keys.authentication_key_uri.uri, "kty": "sr25519", **(header or {})}
    payload = {"iss": did, "sub": did, "nonce": NONCE, "exp": now + 60, "nbf": now,
               **resolve(claims)}
    unsigned = unsigned_did_jwt(head, payload)
    signature = (signer or keys).authentication.sign(signing_data(unsigned).encode("ascii"))
    return make_did_jwt(unsigned, to_hex(signature))


def accept(raw: str) -> None:
    """Every check `did_login` makes before the one-time store."""
    parsed = parse_did_jwt(raw)
    check_claims(parsed, NONCE)
    verify_did_signature(parsed, document())


def test_a_token_as_the_page_writes_it_is_accepted():
    raw = token()
    accept(raw)
    parsed = parse_did_jwt(raw)
    assert parsed.did == KEYS.did and parsed.did.uri == KEYS.did.uri


def padded_token() -> str:
    """A token whose payload part ends in base64 padding (so it has an unpadded twin)."""
    for filler in ("", "x", "xx"):
        raw = token(jti=filler)
        if raw.split(".")[1].endswith("="):
            return raw
    raise AssertionError("one of three lengths pads")


def test_each_respelling_of_a_token_is_refused():
    raw = padded_token()
    accept(raw)
    variants = token_respellings(raw)
    assert {"upper-case hex", "ed25519 type byte on an sr25519 signature", "unpadded signature",
            "hex with whitespace",
            "stray character in signature", "unpadded header and payload",
            "non-canonical last base64 digit"} <= set(variants)
    for name, variant in variants.items():
        with pytest.raises((DidJwtInvalid, InvalidSignature)):
            accept(variant)
            pytest.fail(f"{name} was accepted")


def test_the_replay_key_is_what_was_verified_not_the_string():
    """Signing input and raw signature bytes: equal for equal tokens and for the typed spelling
    of the same signature, different when either differs (sr25519 signatures are randomised,
    so each signing is its own login)."""
    raw = token()
    key = verify_did_signature(parse_did_jwt(raw), document())
    assert verify_did_signature(parse_did_jwt(raw), document()) == key
    assert verify_did_signature(parse_did_jwt(typed_spelling(raw)), document()) == key
    head, payload, _ = raw.split(".")
    resigned = parse_did_jwt(make_did_jwt(f"{head}.{payload}", to_hex(
        KEYS.authentication.sign(signing_data(f"{head}.{payload}").encode("ascii")))))
    assert resigned.signing_input == parse_did_jwt(raw).signing_input
    assert verify_did_signature(resigned, document()) != key
    assert verify_did_signature(parse_did_jwt(token(jti="x")), document()) != key


@pytest.mark.parametrize("claims, reason", [
    ({"exp": NOW + 3600}, "lifetime"),
    ({"nbf": NOW - 3600, "exp": NOW + 10}, "lifetime"),
    ({"exp": NOW + 10**9, "nbf": NOW + 10**9 - 60}, "not valid yet"),
    ({"exp": NOW - 100, "nbf": NOW - 160}, "expired"),
    ({"nbf": NOW + 120, "exp": NOW + 180}, "not valid yet"),
    ({"nonce": "other"}, "nonce"),
    ({"exp": True}, "number"),
    ({"exp": "9999999999"}, "number"),
    ({"exp": 10**400}, "range"),
    ({"exp": 1e300}, "range"),
    ({"nbf": None}, "number"),
    ({"sub": "did:kilt:4p4joKXxjuU1DrupnATY4U8biap7bysGb9RUsQBsfLvunoWs"}, "iss and sub"),
])
def test_claims_are_checked(claims, reason):
    with pytest.raises(DidJwtInvalid, match=reason):
        check_claims(parse_did_jwt(token(**claims)), NONCE)


def test_the_lifetime_bound_is_configurable_and_inclusive():
    now = int(time.time())
    five_minutes = parse_did_jwt(token(nbf=now, exp=now + 300))
    check_claims(five_minutes, NONCE)
    with pytest.raises(DidJwtInvalid, match="lifetime exceeds 120"):
        check_claims(five_minutes, NONCE, max_lifetime=120)
    check_claims(parse_did_jwt(token(nbf=now, exp=now + 120)), NONCE, max_lifetime=120)


@pytest.mark.parametrize("name", sorted(did_respellings(KEYS.did.uri)))
def test_iss_and_sub_in_another_spelling_of_the_signers_did_are_refused(name):
    """Signed by the DID's own key, but naming it in a second spelling: that string would
    become `sub`, a second identity for one account."""
    spelled = did_respellings(KEYS.did.uri)[name]
    parsed = parse_did_jwt(token(iss=spelled, sub=spelled))
    with pytest.raises(DidJwtInvalid):
        check_claims(parsed, NONCE)


def test_a_kid_in_another_spelling_is_refused():
    spelled = did_respellings(KEYS.did.uri)["two-byte prefix"]
    key_id = KEYS.authentication_key_uri.uri.split("#")[1]
    with pytest.raises(DidJwtInvalid, match="kid"):
        parse_did_jwt(token(header={"kid": f"{spelled}#{key_id}"}))
    with pytest.raises(DidJwtInvalid, match="kid"):
        parse_did_jwt(token(header={"kid": f"{KEYS.did.uri}#{key_id.upper().replace('0X', '0x')}"}))


def _part(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize("part", [
    "é" + _part({"a": 1})[1:],  # non-ASCII
    base64.b64encode(b'{"iss": "a", "iss": "b"}').decode(),  # a key twice
    base64.b64encode(b'{"exp": NaN}').decode(),
    base64.b64encode(b'{"exp": Infinity}').decode(),
    base64.b64encode(b"\xff\xfe{}").decode(),  # not UTF-8
    base64.b64encode(b"[" * 3000 + b"]" * 3000).decode()[:8000],  # deep nesting
    base64.b64encode(b"[]").decode(),
    base64.b64encode(b"1" * 5000).decode(),  # an integer too long to parse
    "",
])
def test_malformed_payloads_are_a_typed_error(part):
    raw = token()
    head, _, sig = raw.split(".")
    with pytest.raises(DidJwtInvalid):
        parse_did_jwt(f"{head}.{part}.{sig}")


@pytest.mark.parametrize("value", [None, 42, b"a.b.c", "a.b", "a.b.c.d", "x" * 9000, "é.é.é",
                                   "..", "\x00.\x00.\x00"])
def test_malformed_tokens_are_a_typed_error(value):
    with pytest.raises(DidJwtInvalid):
        parse_did_jwt(value)


def test_the_signature_must_come_from_the_documents_authentication_key():
    other = DidKeys.from_mnemonic(
        "legal winner thank year wave sausage worth useful legal winner thank yellow")
    forged = parse_did_jwt(token(signer=other))  # KEYS's kid and DID, other's signature
    check_claims(forged, NONCE)
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_did_signature(forged, document())
    with pytest.raises(InvalidSignature):
        verify_did_signature(parse_did_jwt(token()), document(other))


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("character", ["é", "\u0660", "\U0001f600", "\x00", "%"])
def test_a_stray_character_in_any_part_is_a_typed_error(index, character):
    """Before: a non-ASCII character in the signature part escaped as a ValueError (a 500)."""
    parts = token().split(".")
    parts[index] = parts[index][:5] + character + parts[index][5:]
    with pytest.raises(DidJwtInvalid):
        parse_did_jwt(".".join(parts))


# -- Exact outcomes (written from `make mutation` survivors, docs/mutation.md) ---------------
# A DidJwtInvalid message is the user's 401 text ("Failed to verify JWT: <message>"), so the
# messages are compared whole; each test starts from a token that passes every earlier check.

OTHER = DidKeys.from_mnemonic(
    "legal winner thank year wave sausage worth useful legal winner thank yellow")
LATER = 2_000_000_000  # a fixed `now` far from the clock, so a test that passes one uses it


def refused(message: str, error: type[Exception] = DidJwtInvalid) -> Any:
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def with_part(index: int, part: str) -> str:
    """A valid token with one of its three parts replaced."""
    parts = token().split(".")
    parts[index] = part
    return ".".join(parts)


@pytest.mark.parametrize("value, message", [
    (None, "token must be an ASCII string of at most 8192 characters"),
    ("a" * 8193, "token must be an ASCII string of at most 8192 characters"),
    ("é.é.é", "token must be an ASCII string of at most 8192 characters"),
    ("a" * 8192, "token must have three parts"),  # 8192 is allowed: the next check decides
    ("a.b", "token must have three parts"),
])
def test_the_token_shape_is_refused_with_its_message(value, message):
    with refused(message):
        parse_did_jwt(value)


@pytest.mark.parametrize("index, part, message", [
    (0, "!!!!", "the header is not standard padded base64"),
    (1, "!!!!", "the payload is not standard padded base64"),
    (2, "!!!!", "the signature part is not standard padded base64"),
    (0, "e30", "the header is not standard padded base64"),  # `{}` without its padding
    (1, "YR==", "the payload is not canonical base64"),  # `a`, non-zero bits in the last digit
    (2, "YR==", "the signature part is not canonical base64"),
    (0, _b64(b"{"), "the header is not JSON"),
    (1, _b64(b"\xff{}"), "the payload is not JSON"),
    (0, _b64(b"[]"), "the header is not a JSON object"),
    (1, _b64(b"1"), "the payload is not a JSON object"),
    (1, _b64(b'{"exp": NaN}'), "token JSON may not contain NaN"),
    (0, _b64(b'{"a": -Infinity}'), "token JSON may not contain -Infinity"),
    (1, _b64(b'{"iss": "a", "iss": "a"}'), "token JSON repeats a key"),
    (2, _b64(b"0xzz"),
     "bad signature or kid: signature is not lowercase hex with an even number of digits"),
    (2, _b64(b"abcd"), "bad signature or kid: signature must be a 0x-prefixed hex string"),
])
def test_each_malformed_part_is_refused_with_its_message(index, part, message):
    with refused(message):
        parse_did_jwt(with_part(index, part))


def test_a_header_without_a_kid_is_refused_with_its_message():
    with refused("bad signature or kid: a key URI must be a string"):
        parse_did_jwt(token(header={"kid": None}))


def test_the_parsed_token_is_what_was_signed():
    raw = token()
    head, payload, _ = raw.split(".")
    parsed = parse_did_jwt(raw)
    assert parsed.header == json.loads(base64.b64decode(head))
    assert parsed.payload == json.loads(base64.b64decode(payload))
    assert parsed.header["kid"] == KEYS.authentication_key_uri.uri
    assert parsed.signing_input == f"{head}.{payload}"
    assert to_hex(parsed.signature) == base64.b64decode(raw.split(".")[2]).decode()


def test_the_unsigned_token_is_compact_json_as_the_login_page_writes_it():
    """`JSON.stringify` writes no spaces; the signature covers these exact bytes."""
    unsigned = unsigned_did_jwt({"alg": "EdDSA", "typ": "JWT"}, {"nonce": "n", "exp": 1})
    head, payload = unsigned.split(".")
    assert base64.b64decode(head) == b'{"alg":"EdDSA","typ":"JWT"}'
    assert base64.b64decode(payload) == b'{"nonce":"n","exp":1}'


def test_the_replay_key_is_length_prefixed_signing_input_and_raw_signature():
    """Pinned byte for byte: keys stored before a restart must still refuse their tokens."""
    parsed = parse_did_jwt(token())
    signed = parsed.signing_input.encode("ascii")
    expected = hashlib.sha256(struct.pack(">I", len(signed)) + signed + parsed.signature)
    assert verify_did_signature(parsed, document()) == expected.hexdigest()
    assert replay_key(parsed.signing_input, parsed.signature) == expected.hexdigest()


@pytest.mark.parametrize("claims, message", [
    ({"sub": OTHER.did.uri}, "iss and sub must be the same DID"),
    ({"iss": None, "sub": None}, "iss and sub must be the same DID"),
    ({"iss": "did:KILT:" + KEYS.did.uri.removeprefix("did:kilt:"),
      "sub": "did:KILT:" + KEYS.did.uri.removeprefix("did:kilt:")},
     f"'did:KILT:{KEYS.did.uri.removeprefix('did:kilt:')}' is not a KILT DID "
     "(expected did:kilt:<address>)"),
    ({"iss": OTHER.did.uri, "sub": OTHER.did.uri},
     "the signing key does not belong to the token's DID"),
    ({"exp": "soon"}, "exp must be a number of seconds"),
    ({"exp": True}, "exp must be a number of seconds"),
    ({"nbf": None}, "nbf must be a number of seconds"),
    ({"exp": 2**53}, "exp is out of range"),
    ({"exp": float(2**53) * 2}, "exp is out of range"),
    ({"nbf": -(2**53)}, "nbf is out of range"),
    ({"nbf": -float(2**53) * 2}, "nbf is out of range"),
    ({"exp": 2**53 - 1}, "token lifetime exceeds 300 seconds"),  # in range: the next check
    ({"exp": float(2**53 - 1)}, "token lifetime exceeds 300 seconds"),
    ({"nonce": "other"}, "nonce does not match the login session"),
    ({"nonce": 5}, "nonce does not match the login session"),
])
def test_each_claim_is_refused_with_its_message(claims, message):
    with refused(message):
        check_claims(parse_did_jwt(token(**claims)), NONCE)


def test_another_did_named_in_iss_and_sub_is_refused_though_the_kid_signs():
    """The attacker's own key signs a token naming someone else's DID: the kid decides."""
    did = OTHER.did.uri
    forged = parse_did_jwt(token(iss=did, sub=did))
    verify_did_signature(forged, document())  # a genuine signature by the kid's key
    with refused("the signing key does not belong to the token's DID"):
        check_claims(forged, NONCE)


@pytest.mark.parametrize("nbf, exp, now, message", [
    (LATER - 90, LATER - 30, LATER, None),  # expired, but within the clock skew
    (LATER - 91, LATER - 31, LATER, "token has expired"),
    (LATER + 30, LATER + 90, LATER, None),  # not yet valid, but within the clock skew
    (LATER + 31, LATER + 91, LATER, "token is not valid yet"),
    (LATER, LATER, LATER, None),  # a zero lifetime
    (LATER, LATER - 1, LATER, "token lifetime exceeds 300 seconds"),  # exp before nbf
    (LATER + 30, LATER + 330, LATER, None),  # the longest reach: skew plus lifetime
    (LATER + 29, LATER + 330, LATER, "token lifetime exceeds 300 seconds"),
    (LATER + 0.5, LATER + 60.5, LATER, None),  # times may be fractional
])
def test_the_time_bounds_are_exact_around_the_given_now(nbf, exp, now, message):
    parsed = parse_did_jwt(token(nbf=nbf, exp=exp))
    if message is None:
        check_claims(parsed, NONCE, now=now)
    else:
        with refused(message):
            check_claims(parsed, NONCE, now=now)


def test_a_document_of_another_did_is_refused_even_with_the_signing_key():
    """The signature verifies under the key, but the document is not the kid's DID's."""
    mixed = DidDocument(did=OTHER.did, authentication=document().authentication,
                        key_agreement=(), assertion_method=None, capability_delegation=None,
                        keys=document().keys, last_tx_counter=0)
    with refused("the DID document is not the kid's DID", InvalidSignature):
        verify_did_signature(parse_did_jwt(token()), mixed)


def test_a_kid_naming_another_key_of_the_did_is_refused_though_the_authentication_key_signs():
    """Only the authentication key logs in: a kid naming any other key id is refused, even
    when the signature itself is the authentication key's."""
    kid = f"{KEYS.did.uri}#0x{'11' * 32}"
    parsed = parse_did_jwt(token(header={"kid": kid}))
    check_claims(parsed, NONCE)
    with refused("the kid is not the DID's authentication key", InvalidSignature):
        verify_did_signature(parsed, document())

"""Credential hashing and data integrity, each rule pinned so that changing it fails a test
(`make mutation`, docs/mutation.md). Ground truth is the SDK's vectors (../shared/kilt)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from opendid.kilt.credentials import (
    MAX_PROPERTIES,
    Credential,
    ctype_hash,
    make_credential,
    make_presentation,
    parse_presentation,
    root_hash,
    signing_data,
    verify_data_integrity,
)
from opendid.kilt.encoding import blake2b_256, from_hex, to_hex
from opendid.kilt.errors import CredentialInvalid, InvalidHex, InvalidMessage, KiltError
from opendid.kilt.keys import DidKeys


def _keys(vectors: dict[str, Any]) -> DidKeys:
    return DidKeys.from_mnemonic(vectors["provisioned-state"]["user"]["mnemonic"])


def _present(keys: DidKeys, credential: Credential, challenge: str | None = "0x" + "ab" * 24,
             ) -> dict[str, Any]:
    return make_presentation(credential, keys.authentication_key_uri.uri,
                             keys.authentication.sign, challenge)


def refused(message: str) -> Any:
    return pytest.raises(CredentialInvalid, match=f"^{re.escape(message)}$")


# -- hashing as the SDK does -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["email", "rich"])
def test_made_credentials_match_the_sdk_hash_for_hash(vectors, name):
    """Same nonces, same claim hashes in the same (numeric) order, same root, same fields."""
    case = vectors["credential"][name]
    nonces = iter(s["nonce"] for s in case["statements"])
    claim = case["credential"]["claim"]
    made = make_credential(claim["cTypeHash"], claim["contents"], claim["owner"],
                           nonce=lambda: next(nonces))
    assert made.data == case["credential"]


def test_every_statement_gets_its_own_random_nonce(vectors):
    """The nonces salt the hashes of hidden properties; a fixed nonce would let a verifier
    guess them from the claim hashes."""
    claim = vectors["credential"]["rich"]["credential"]["claim"]
    first = make_credential(claim["cTypeHash"], claim["contents"], claim["owner"])
    second = make_credential(claim["cTypeHash"], claim["contents"], claim["owner"])
    nonces = list(first.data["claimNonceMap"].values())
    assert len(set(nonces)) == len(nonces) == len(claim["contents"]) + 1
    assert not set(nonces) & set(second.data["claimNonceMap"].values())
    assert first.root_hash != second.root_hash


def test_the_ctype_hash_ignores_key_order_and_keeps_unicode_unescaped(vectors):
    schema = vectors["credential"]["rich"]["ctype"]
    reordered = dict(reversed(list(schema.items())))
    assert ctype_hash(reordered) == vectors["credential"]["rich"]["credential"]["claim"][
        "cTypeHash"]
    # JSON.stringify writes non-ASCII as is: the hash is over the UTF-8 bytes
    unicode = {"$id": "kilt:ctype:0x00", "title": "Zoë 🚀", "type": "object"}
    expected = blake2b_256('{"title":"Zoë 🚀","type":"object"}'.encode())
    assert ctype_hash(unicode) == to_hex(expected)


def test_what_the_claimer_signs_is_root_hash_then_challenge():
    root = "0x" + "11" * 32
    assert signing_data(root, None) == from_hex(root)
    assert signing_data(root, "0xabcd") == from_hex(root) + b"\xab\xcd"
    # a challenge that is not 0x-hex is signed as its UTF-8 text
    assert signing_data(root, "plain") == from_hex(root) + b"plain"


def test_a_presentation_without_challenge_carries_no_challenge_field(vectors):
    case = vectors["credential"]["email"]
    data = _present(_keys(vectors), Credential(case["credential"]), challenge=None)
    assert "challenge" not in data["claimerSignature"]
    verify_data_integrity(parse_presentation(data))


# -- shape and integrity ---------------------------------------------------------------------


def test_a_malformed_presentation_says_what_is_wrong(vectors):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    data["rootHash"] = 5
    with pytest.raises(InvalidMessage,
                       match=r"^malformed presentation: Input should be a valid string$"):
        parse_presentation(data)


def _credential_with(count: int, owner: str) -> Credential:
    return make_credential("0x" + "ee" * 32, {f"p{i}": i for i in range(count)}, owner)


def test_the_largest_allowed_claim_verifies(vectors):
    keys = _keys(vectors)
    data = _present(keys, _credential_with(MAX_PROPERTIES, keys.did.uri))
    verify_data_integrity(parse_presentation(data))


def test_one_property_more_is_refused_at_parsing(vectors):
    keys = _keys(vectors)
    data = _present(keys, _credential_with(MAX_PROPERTIES + 1, keys.did.uri))
    with pytest.raises(InvalidMessage, match="at most 101 items"):
        parse_presentation(data)


def test_too_many_properties_are_refused_before_hashing_them(vectors):
    """Within the parser's limit on claim hashes, but with more properties than allowed."""
    keys = _keys(vectors)
    data = _present(keys, _credential_with(MAX_PROPERTIES + 1, keys.did.uri))
    data["claimHashes"] = data["claimHashes"][: MAX_PROPERTIES + 1]
    with refused("too many claim properties"):
        verify_data_integrity(parse_presentation(data))


def test_claim_hashes_in_upper_case_hex_are_a_second_spelling_and_refused(vectors):
    """Hex has one spelling (docs/security.md): the SDK writes lowercase."""
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    verify_data_integrity(parse_presentation(copy.deepcopy(data)))
    data["claimHashes"] = ["0x" + h[2:].upper() for h in data["claimHashes"]]
    with pytest.raises(KiltError):
        verify_data_integrity(parse_presentation(data))


def test_a_disclosed_property_without_its_nonce_is_refused(vectors):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    data["claimNonceMap"].popitem()
    with refused("a disclosed property has no nonce in claimNonceMap"):
        verify_data_integrity(parse_presentation(data))


def test_a_disclosed_property_with_another_nonce_is_refused(vectors):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    digest = next(iter(data["claimNonceMap"]))
    data["claimNonceMap"][digest] = "00000000-0000-4000-8000-000000000000"
    with refused("a disclosed property does not match the claim hashes"):
        verify_data_integrity(parse_presentation(data))


def test_a_wrong_root_hash_is_refused(vectors):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    data["rootHash"] = "0x" + "00" * 32
    with refused("the root hash does not match the claim hashes"):
        verify_data_integrity(parse_presentation(data))


def test_a_claim_hash_that_is_not_hex_is_refused_with_its_reason(vectors):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    data["claimHashes"].append("0x12")
    with refused("claim hash must be 32 bytes, got 1"):
        verify_data_integrity(parse_presentation(data))


def _with_legitimation_and_delegation(vectors: dict[str, Any]) -> dict[str, Any]:
    """A credential whose root hash commits to a legitimation and a delegation node."""
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    legitimation, delegation = "0x" + "4c" * 32, "0x" + "de" * 32
    data["legitimations"] = [{"rootHash": legitimation}]
    data["delegationId"] = delegation
    data["rootHash"] = root_hash(data["claimHashes"], [legitimation], delegation)
    return data


def test_legitimations_and_delegation_are_part_of_the_root_hash(vectors):
    data = _with_legitimation_and_delegation(vectors)
    verify_data_integrity(parse_presentation(data))
    without = copy.deepcopy(data)
    without["legitimations"] = []
    with refused("the root hash does not match the claim hashes"):
        verify_data_integrity(parse_presentation(without))
    undelegated = copy.deepcopy(data)
    undelegated["delegationId"] = None
    with refused("the root hash does not match the claim hashes"):
        verify_data_integrity(parse_presentation(undelegated))


@pytest.mark.parametrize("legitimation", [{}, {"rootHash": 5}, {"rootHash": None}])
def test_a_legitimation_without_a_root_hash_is_refused(vectors, legitimation):
    data = _with_legitimation_and_delegation(vectors)
    data["legitimations"] = [legitimation]
    with refused("a legitimation has no rootHash"):
        verify_data_integrity(parse_presentation(data))


@pytest.mark.parametrize(("field", "reason"), [
    ("legitimations", "legitimation root hash must be 32 bytes, got 1"),
    ("delegationId", "delegation id must be 32 bytes, got 1"),
])
def test_a_short_legitimation_or_delegation_id_is_refused_naming_it(vectors, field, reason):
    data = _with_legitimation_and_delegation(vectors)
    data[field] = [{"rootHash": "0x12"}] if field == "legitimations" else "0x12"
    with refused(reason):
        verify_data_integrity(parse_presentation(data))


def test_signing_data_refuses_a_short_root_or_a_bad_hex_challenge():
    with pytest.raises(InvalidHex, match=r"^root hash must be 32 bytes, got 1$"):
        signing_data("0x12", None)
    with pytest.raises(InvalidHex,
                       match=r"^challenge is not lowercase hex with an even number of digits$"):
        signing_data("0x" + "11" * 32, "0xzz")


def test_hidden_properties_lose_their_nonce_and_the_challenge_is_stated(vectors):
    keys = _keys(vectors)
    case = vectors["credential"]["rich"]
    data = make_presentation(Credential(case["credential"]), keys.authentication_key_uri.uri,
                             keys.authentication.sign, "0xabcd", selected=["age"])
    kept = {s["digest"]: s["nonce"] for s in case["statements"]
            if s["statement"].startswith(('{"@id"', '{"kilt:ctype:')) and
            (s["statement"].startswith('{"@id"') or s["statement"].endswith('#age":42}'))}
    assert data["claimNonceMap"] == kept
    assert data["claimerSignature"]["challenge"] == "0xabcd"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_property_json_cannot_carry_is_refused_naming_it(vectors, value):
    """A wallet's message may parse to NaN or Infinity (Python's json accepts them); no SDK can
    hash such a claim, so it is refused before hashing, with its own message."""
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    data["claim"]["contents"]["Email"] = value
    with refused("a claim property cannot be serialised as JSON"):
        verify_data_integrity(parse_presentation(data))

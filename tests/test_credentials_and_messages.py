"""Credential hashing, presentations and Credential-API messages against the SDK's vectors."""

import copy
import json

import pytest

from opendid.kilt.credentials import (
    canonical_json,
    claim_statements,
    ctype_hash,
    make_credential,
    make_presentation,
    parse_presentation,
    salted_hash,
    signing_data,
    statement_digest,
    verify_data_integrity,
)
from opendid.kilt.crypto import verify_signature
from opendid.kilt.encoding import from_hex
from opendid.kilt.errors import CredentialInvalid, DecryptionFailed, InvalidMessage
from opendid.kilt.keys import DidKeys
from opendid.kilt.messages import (
    open_json,
    parse_envelope,
    parse_request_credential,
    parse_submit_credential,
    request_credential,
    seal,
)


def _presentable(credential):
    data = copy.deepcopy(credential)
    data["claimerSignature"] = {"keyUri": "x", "signature": "0x00"}
    return parse_presentation(data)


@pytest.mark.parametrize("name", ["email", "rich"])
def test_statements_digests_and_root_hash_match_the_sdk(vectors, name):
    case = vectors["credential"][name]
    presentation = _presentable(case["credential"])
    statements = claim_statements(presentation.claim)
    assert statements == [s["statement"] for s in case["statements"]]
    for statement, expected in zip(statements, case["statements"], strict=True):
        assert statement_digest(statement) == expected["digest"]
        assert salted_hash(expected["nonce"], expected["digest"]) == expected["saltedHash"]
    verify_data_integrity(presentation)
    assert ctype_hash(case["ctype"]) == case["credential"]["claim"]["cTypeHash"]


def test_whole_number_floats_are_written_like_javascript():
    assert canonical_json({"a": 1.0, "b": 1.5, "c": [2.0]}) == '{"a":1,"b":1.5,"c":[2]}'


def test_made_credential_matches_the_sdk_with_the_same_nonces(vectors):
    case = vectors["credential"]["email"]
    nonces = iter(s["nonce"] for s in case["statements"])
    claim = case["credential"]["claim"]
    made = make_credential(claim["cTypeHash"], claim["contents"], claim["owner"],
                           nonce=lambda: next(nonces))
    assert made.data["rootHash"] == case["credential"]["rootHash"]
    assert made.data["claimHashes"] == case["credential"]["claimHashes"]


def test_selective_disclosure_presentation_of_the_sdk_verifies(vectors):
    case = vectors["credential"]["selectiveDisclosure"]
    presentation = parse_presentation(case["presentation"])
    verify_data_integrity(presentation)


def test_our_presentations_verify_and_can_hide_properties(vectors):
    keys = DidKeys.from_mnemonic(vectors["provisioned-state"]["user"]["mnemonic"])
    case = vectors["credential"]["rich"]
    from opendid.kilt.credentials import Credential
    challenge = "0x" + "ab" * 24
    data = make_presentation(Credential(case["credential"]), keys.authentication_key_uri.uri,
                             keys.authentication.sign, challenge, selected=["age"])
    presentation = parse_presentation(data)
    assert list(presentation.claim.contents) == ["age"]
    verify_data_integrity(presentation)
    verify_signature("sr25519", keys.authentication.public_key,
                     signing_data(presentation.rootHash, challenge),
                     from_hex(presentation.claimerSignature.signature))


@pytest.mark.parametrize("tamper", [
    lambda p: p["claim"]["contents"].update(Email="evil@example.org"),
    lambda p: p["claim"].update(owner="did:kilt:4p4joKXxjuU1DrupnATY4U8biap7bysGb9RUsQBsfLvunoWs"),
    lambda p: p.update(rootHash="0x" + "00" * 32),
    lambda p: p["claimHashes"].pop(),
    lambda p: p["claimNonceMap"].clear(),
    lambda p: p.update(claimHashes=["0x12", *p["claimHashes"][1:]]),
])
def test_tampered_presentations_fail_integrity(vectors, tamper):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    tamper(data)
    with pytest.raises(CredentialInvalid):
        verify_data_integrity(parse_presentation(data))


@pytest.mark.parametrize("mutate", [
    lambda p: p.pop("claimerSignature"),
    lambda p: p.update(claimHashes="0x00"),
    lambda p: p["claim"].update(contents=["x"]),
    lambda p: p["claim"].update(owner=5),
    lambda p: p.update(rootHash=None),
])
def test_malformed_presentations_are_rejected(vectors, mutate):
    data = copy.deepcopy(vectors["credential"]["presentation"]["presentation"])
    mutate(data)
    with pytest.raises(InvalidMessage):
        parse_presentation(data)


def test_submit_credential_message_of_the_sdk_decrypts_and_parses(vectors):
    case = vectors["nacl-box"]["cases"][0]
    envelope = parse_envelope(case["envelope"])
    message = open_json(envelope, from_hex(case["receiver"]["x25519SecretKey"]),
                        from_hex(case["sender"]["x25519PublicKey"]))
    parsed = parse_submit_credential(message)
    assert parsed.body.content[0].rootHash == vectors["credential"]["email"]["credential"][
        "rootHash"]


def _submit_message(vectors):
    plaintext = vectors["nacl-box"]["cases"][0]["plaintext"]
    return json.loads(plaintext)


def test_credential_type_is_accepted_as_an_alias(vectors):
    message = _submit_message(vectors)
    message["body"]["type"] = "credential"
    assert parse_submit_credential(message).body.type == "credential"


@pytest.mark.parametrize("mutate", [
    lambda m: m.update(sender=None),
    lambda m: m.update(messageId=5),
    lambda m: m["body"].update(type="request-credential"),
    lambda m: m["body"].update(content=[]),
    lambda m: m["body"]["content"][0].pop("claimerSignature"),
    lambda m: m.pop("body"),
])
def test_malformed_submit_messages_are_rejected(vectors, mutate):
    message = _submit_message(vectors)
    mutate(message)
    with pytest.raises(InvalidMessage):
        parse_submit_credential(message)


@pytest.mark.parametrize("envelope", [
    {}, {"ciphertext": "0x00", "nonce": "0x00", "senderKeyUri": "a", "receiverKeyUri": "b"},
    {"ciphertext": "zz", "nonce": "0x" + "00" * 24, "senderKeyUri": "a", "receiverKeyUri": "b"},
    {"ciphertext": 1, "nonce": "0x" + "00" * 24, "senderKeyUri": "a", "receiverKeyUri": "b"},
    [], "text",
])
def test_malformed_envelopes_are_rejected(envelope):
    with pytest.raises(InvalidMessage):
        parse_envelope(envelope)


def test_request_credential_round_trip():
    ours = DidKeys.from_mnemonic("bottom drive obey lake curtain smoke basket hold race lonely "
                                 "fit walk")
    wallet_secret = b"\x07" * 32
    from opendid.kilt.crypto import x25519_public_key
    requirements = [{"cTypeHash": "0x" + "11" * 32, "trustedAttesters": [],
                     "requiredProperties": ["Email"]}]
    message = request_credential(requirements, "0x" + "22" * 24, ours.did.uri, "did:light")
    envelope = seal(message, ours.key_agreement_key_uri.uri, "did:light",
                    ours.key_agreement_secret, x25519_public_key(wallet_secret))
    opened = open_json(parse_envelope(envelope), wallet_secret, ours.key_agreement_public)
    reqs, challenge = parse_request_credential(opened)
    assert challenge == "0x" + "22" * 24
    assert reqs[0].requiredProperties == ["Email"]
    with pytest.raises(DecryptionFailed):
        open_json(parse_envelope(envelope), b"\x08" * 32, ours.key_agreement_public)

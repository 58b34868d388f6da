"""DID, key URI and light DID parsing against the SDK's vectors and malformed inputs."""

import pytest

from opendid.kilt.dids import (
    full_did_from_account,
    light_did_encryption_key,
    make_light_did,
    parse_full_did,
    parse_key_uri,
    parse_light_did,
)
from opendid.kilt.encoding import from_hex
from opendid.kilt.errors import InvalidDid, InvalidLightDid
from tests.respell import address_respellings, did_respellings

USER = "did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTBZXKnWBcQqTh6H"


def test_full_dids_of_the_vectors_parse(vectors):
    for case in vectors["key-derivation"]["cases"]:
        did = parse_full_did(case["did"])
        assert did.uri == case["did"]
        assert did.account_id == from_hex(case["authentication"]["publicKey"])


def test_key_uris_of_the_vectors_parse(vectors):
    for case in vectors["key-derivation"]["cases"]:
        for uri in case.get("onChainKeyUris", {}).values():
            if uri is None:
                continue
            key = parse_key_uri(uri)
            assert key.uri == uri
            assert key.did.uri == case["did"]


@pytest.mark.parametrize("bad", [
    None, 42, "", "did:kilt:", "did:web:example.org", "did:kilt:notanaddress",
    USER[:-1] + "J",  # checksum broken
    "did:kilt:5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",  # SS58 prefix 42, not 38
    USER + ":extra", "did:kilt:light:004oS9dTxwbB24TH9Fnm2oBZQ4ziGMA1rMf2K95CpQWk2ydKB1",
    "did:kilt:" + "4" * 5000,
])
def test_malformed_full_dids_are_rejected(bad):
    with pytest.raises(InvalidDid):
        parse_full_did(bad)


@pytest.mark.parametrize("bad", [
    USER, USER + "#", USER + "#0x12", USER + "#0x" + "zz" * 32, USER + "#" + "ab" * 32,
    "did:kilt:nope#0x" + "ab" * 32,
])
def test_malformed_key_uris_are_rejected(bad):
    with pytest.raises(InvalidDid):
        parse_key_uri(bad)


def test_light_dids_of_the_vectors_parse(vectors):
    for case in vectors["light-did"]["cases"]:
        light = parse_light_did(case["uri"])
        assert light.address == case["authentication"]["address"]
        assert light.auth_key_type == case["authentication"]["type"]
        assert light.auth_public_key == from_hex(case["authentication"]["publicKey"])
        if case["keyAgreement"] is None:
            assert light.encryption_key is None
            with pytest.raises(InvalidLightDid):
                light_did_encryption_key(case["uri"])
        else:
            expected = from_hex(case["keyAgreement"]["publicKey"])
            assert light.encryption_key == expected
            assert light_did_encryption_key(case["encryptionKeyUri"]) == expected


def test_made_light_did_round_trips():
    uri = make_light_did("sr25519", b"\x01" * 32, b"\x02" * 32)
    light = parse_light_did(uri + "#encryption")
    assert light.encryption_key == b"\x02" * 32
    assert light.auth_public_key == b"\x01" * 32


@pytest.mark.parametrize("bad", [
    None, "did:kilt:4abc", "did:kilt:light:", "did:kilt:light:99" + USER[9:],
    "did:kilt:light:00" + USER[9:] + ":x123",  # not multibase z
    "did:kilt:light:00" + USER[9:] + ":z0OIl",  # not base58
    "did:kilt:light:00" + USER[9:] + ":z1",  # version byte only, empty CBOR
    "did:kilt:light:00" + USER[9:] + ":z2",  # wrong version byte
    "did:kilt:light:00" + USER[9:] + ":z1111:extra",
    "did:kilt:light:00" + "4" * 48 + ":z1",
])
def test_malformed_light_dids_are_rejected(bad):
    with pytest.raises(InvalidLightDid):
        light_did_encryption_key(bad)


def test_light_did_with_bad_cbor_key_is_rejected():
    import base58
    import cbor2
    for details in ({"e": {"publicKey": b"short", "type": "x25519"}},
                    {"e": {"publicKey": b"\x00" * 32, "type": "ed25519"}},
                    {"e": "nope"}, [1, 2]):
        encoded = "z" + base58.b58encode(b"\x00" + cbor2.dumps(details)).decode()
        with pytest.raises(InvalidLightDid):
            light_did_encryption_key("did:kilt:light:00" + USER[9:] + ":" + encoded)


# -- one account, one DID string -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(did_respellings(USER)))
def test_a_second_spelling_of_a_full_did_is_refused(name):
    """Lenient SS58 decoders read these as USER's account; each would become another `sub`."""
    respelled = did_respellings(USER)[name]
    assert parse_full_did(USER).uri == USER
    with pytest.raises(InvalidDid):
        parse_full_did(respelled)
    with pytest.raises(InvalidDid):
        parse_key_uri(respelled + "#0x" + "ab" * 32)


@pytest.mark.parametrize("name", sorted(address_respellings(USER[9:])))
def test_a_second_spelling_of_a_light_did_address_is_refused(name):
    key = b"\x02" * 32
    canonical = make_light_did("sr25519", parse_full_did(USER).account_id, key)
    assert parse_light_did(canonical).address == USER[9:]
    respelled = canonical.replace(USER[9:], address_respellings(USER[9:])[name], 1)
    with pytest.raises(InvalidLightDid):
        parse_light_did(respelled)


def test_a_parsed_did_is_always_the_canonical_string(vectors):
    for case in vectors["key-derivation"]["cases"]:
        did = parse_full_did(case["did"])
        assert did.uri == case["did"] == full_did_from_account(did.account_id).uri

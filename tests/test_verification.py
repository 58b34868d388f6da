"""Presentations of provisioned credentials verified against the live dev chain."""

import pytest

from opendid.devtools.wallet import Wallet
from opendid.kilt.credentials import (
    Credential,
    make_credential,
    make_presentation,
    parse_presentation,
)
from opendid.kilt.encoding import from_hex, to_hex
from opendid.kilt.errors import CredentialInvalid
from opendid.kilt.extrinsics import attest
from opendid.kilt.keys import DidKeys, sr25519_keypair
from opendid.kilt.messages import CTypeRequirement
from opendid.kilt.verification import match_requirements, verify_presentations
from tests.respell import did_respellings

CHALLENGE = "0x" + "5a" * 24


@pytest.fixture(scope="module")
def wallet(provisioned):
    return Wallet.load(provisioned["wallet"])


def _present(wallet, label, challenge=CHALLENGE, tamper=None):
    held = next(c for c in wallet.credentials if c.label == label)
    data = make_presentation(held.credential, wallet.keys.authentication_key_uri.uri,
                             wallet.keys.authentication.sign, challenge)
    if tamper:
        tamper(data)
    return parse_presentation(data)


def _requirement(provisioned):
    return [CTypeRequirement(cTypeHash=provisioned["ctype"],
                             trustedAttesters=[provisioned["attester"]["did"]],
                             requiredProperties=["Email"])]


def test_provisioned_credential_verifies(chain, provisioned, wallet):
    verified = verify_presentations([_present(wallet, "Email (trusted attester)")], CHALLENGE,
                                    chain)
    match = match_requirements(verified, _requirement(provisioned))
    assert match.owner.uri == provisioned["user"]["did"]
    assert match.web3name == provisioned["user"]["web3name"]
    assert match.attester.uri == provisioned["attester"]["did"]
    assert match.properties == {"Email": "some@example.org"}


def test_vector_credential_presented_by_the_sdk_verifies(chain, provisioned, vectors):
    case = vectors["credential"]["presentation"]
    verified = verify_presentations([parse_presentation(case["presentation"])],
                                    case["challenge"], chain)
    assert verified[0].attester.uri == provisioned["attester"]["did"]


def test_tampered_credential_fails(chain, wallet):
    def tamper(p):
        p["claim"]["contents"]["Email"] = "mallory@example.org"
    with pytest.raises(CredentialInvalid, match="claimNonceMap"):
        verify_presentations([_present(wallet, "Email (trusted attester)", tamper=tamper)],
                             CHALLENGE, chain)


def test_revoked_credential_fails(chain, wallet):
    with pytest.raises(CredentialInvalid, match="revoked"):
        verify_presentations([_present(wallet, "Email (revoked)")], CHALLENGE, chain)


def test_untrusted_attester_fails_the_requirements(chain, provisioned, wallet):
    verified = verify_presentations([_present(wallet, "Email (untrusted attester)")], CHALLENGE,
                                    chain)
    with pytest.raises(CredentialInvalid, match="not trusted"):
        match_requirements(verified, _requirement(provisioned))


def test_missing_property_fails_the_requirements(chain, provisioned, wallet):
    verified = verify_presentations([_present(wallet, "Email (trusted attester)")], CHALLENGE,
                                    chain)
    requirement = _requirement(provisioned)
    requirement[0].requiredProperties.append("Phone")
    with pytest.raises(CredentialInvalid, match="Phone"):
        match_requirements(verified, requirement)


def test_signature_over_another_challenge_fails(chain, wallet):
    presentation = _present(wallet, "Email (trusted attester)", challenge="0x" + "01" * 24)
    with pytest.raises(CredentialInvalid):
        verify_presentations([presentation], CHALLENGE, chain)


def test_signature_by_another_did_fails(chain, provisioned, wallet):
    other = DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"])
    held = wallet.credentials[0]
    data = make_presentation(held.credential, other.authentication_key_uri.uri,
                             other.authentication.sign, CHALLENGE)
    with pytest.raises(CredentialInvalid, match="another DID"):
        verify_presentations([parse_presentation(data)], CHALLENGE, chain)


def test_unattested_credential_fails(chain, provisioned, wallet):
    fresh = make_credential(provisioned["ctype"], {"Email": "never@example.org"}, wallet.did)
    data = make_presentation(Credential(fresh.data), wallet.keys.authentication_key_uri.uri,
                             wallet.keys.authentication.sign, CHALLENGE)
    with pytest.raises(CredentialInvalid, match="not attested"):
        verify_presentations([parse_presentation(data)], CHALLENGE, chain)


# -- tests that reach the claimer-signature check: everything before it is valid ----------------

def _signed_by(wallet, sign, challenge=CHALLENGE, keep_challenge=True):
    """The trusted credential with the owner's key URI and the right challenge, signed by
    `sign` over root hash ‖ challenge."""
    held = next(c for c in wallet.credentials if c.label == "Email (trusted attester)")
    data = make_presentation(held.credential, wallet.keys.authentication_key_uri.uri, sign,
                             challenge)
    if not keep_challenge:
        del data["claimerSignature"]["challenge"]
    return data


def test_a_claimer_signature_by_another_key_is_refused(chain, provisioned, wallet):
    other = DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"])
    data = _signed_by(wallet, other.authentication.sign)
    with pytest.raises(CredentialInvalid, match="claimer signature: the signature does not"):
        verify_presentations([parse_presentation(data)], CHALLENGE, chain)


@pytest.mark.parametrize("position", [0, 31, 63])
def test_a_tampered_claimer_signature_is_refused(chain, wallet, position):
    data = _signed_by(wallet, wallet.keys.authentication.sign)
    raw = bytearray(from_hex(data["claimerSignature"]["signature"]))
    raw[position] ^= 0x01
    data["claimerSignature"]["signature"] = to_hex(bytes(raw))
    with pytest.raises(CredentialInvalid, match="claimer signature: the signature does not"):
        verify_presentations([parse_presentation(data)], CHALLENGE, chain)


def test_a_signature_over_another_challenge_without_a_challenge_field_is_refused(chain,
                                                                                    wallet):
    data = _signed_by(wallet, wallet.keys.authentication.sign, challenge="0x" + "01" * 24,
                      keep_challenge=False)
    with pytest.raises(CredentialInvalid, match="claimer signature: the signature does not"):
        verify_presentations([parse_presentation(data)], CHALLENGE, chain)


@pytest.mark.parametrize("spelling", ["upper-case hex", "ed25519 type byte", "ecdsa type byte"])
def test_a_second_spelling_of_a_valid_claimer_signature_is_refused(chain, wallet, spelling):
    data = _signed_by(wallet, wallet.keys.authentication.sign)
    verify_presentations([parse_presentation(data)], CHALLENGE, chain)
    signature = data["claimerSignature"]["signature"]
    data["claimerSignature"]["signature"] = {
        "upper-case hex": "0x" + signature[2:].upper(),
        "ed25519 type byte": "0x00" + signature[2:],
        "ecdsa type byte": "0x02" + signature[2:],
    }[spelling]
    with pytest.raises(CredentialInvalid, match="claimer signature"):
        verify_presentations([parse_presentation(data)], CHALLENGE, chain)


def test_a_claimer_signature_with_its_own_type_byte_verifies(chain, wallet):
    """The contract: raw, or prefixed with the MultiSignature type byte of the key (sr25519 =
    1). The presentation's one-time challenge, not the signature, makes it single-use."""
    data = _signed_by(wallet, wallet.keys.authentication.sign)
    data["claimerSignature"]["signature"] = "0x01" + data["claimerSignature"]["signature"][2:]
    verify_presentations([parse_presentation(data)], CHALLENGE, chain)


def test_an_attested_credential_whose_owner_is_spelled_otherwise_is_refused(chain, provisioned,
                                                                            wallet, vectors):
    """A real, attested credential naming the user's account in a second SS58 spelling, signed
    by the user's key: a lenient parser makes that string a second `sub` for one account."""
    spelled = did_respellings(wallet.did)["two-byte prefix"]
    credential = make_credential(provisioned["ctype"], {"Email": "twin@example.org"}, spelled)
    attest(chain, DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"]),
           sr25519_keypair(vectors["provisioned-state"]["payment"]["mnemonic"]),
           credential.root_hash, provisioned["ctype"])
    key_id = wallet.keys.authentication_key_uri.uri.split("#")[1]
    for key_uri in (wallet.keys.authentication_key_uri.uri, f"{spelled}#{key_id}"):
        data = make_presentation(credential, key_uri, wallet.keys.authentication.sign, CHALLENGE)
        with pytest.raises(CredentialInvalid, match="claim owner"):
            verify_presentations([parse_presentation(data)], CHALLENGE, chain)

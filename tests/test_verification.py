"""Presentations of provisioned credentials verified against the live dev chain."""

import pytest

from opendid.devtools.wallet import Wallet
from opendid.kilt.credentials import (
    Credential,
    make_credential,
    make_presentation,
    parse_presentation,
)
from opendid.kilt.errors import CredentialInvalid
from opendid.kilt.keys import DidKeys
from opendid.kilt.messages import CTypeRequirement
from opendid.kilt.verification import match_requirements, verify_presentations

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

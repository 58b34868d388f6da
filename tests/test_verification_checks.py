"""Each check of `verify_presentations` and `match_requirements`, reached with everything before
it valid (a real dev chain, credentials made and signed as a wallet does), so that removing the
check lets the presentation through. Pinned by `make mutation` (docs/mutation.md)."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

import pytest

from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.kilt.credentials import (
    Credential,
    make_credential,
    make_presentation,
    parse_presentation,
)
from opendid.kilt.errors import CredentialInvalid
from opendid.kilt.extrinsics import attest
from opendid.kilt.keys import DidKeys, sr25519_keypair
from opendid.kilt.messages import CTypeRequirement
from opendid.kilt.verification import match_requirements, verify_presentations

CHALLENGE = "0x" + "5a" * 24
TRUSTED = "Email (trusted attester)"
UNTRUSTED = "Email (untrusted attester)"
# A claim under a CType that is not the one the attester attested it for.
FOREIGN_CTYPE = "0x" + "c7" * 32


def _held(wallet: Wallet, label: str) -> Credential:
    return next(c for c in wallet.credentials if c.label == label).credential


def _present(wallet: Wallet, label: str = TRUSTED, challenge: str | None = CHALLENGE,
             key_uri: str | None = None) -> dict[str, Any]:
    return make_presentation(_held(wallet, label),
                             key_uri or wallet.keys.authentication_key_uri.uri,
                             wallet.keys.authentication.sign, challenge)


def _verify(chain: ChainClient, *data: dict[str, Any], challenge: str = CHALLENGE) -> Any:
    return verify_presentations([parse_presentation(d) for d in data], challenge, chain)


def refused(message: str) -> Any:
    """Expect `CredentialInvalid` with exactly this message (the 400 the wallet's user reads)."""
    return pytest.raises(CredentialInvalid, match=f"^{re.escape(message)}$")


def _requirement(provisioned: dict[str, Any], **changes: Any) -> CTypeRequirement:
    fields: dict[str, Any] = {"cTypeHash": provisioned["ctype"],
                              "trustedAttesters": [provisioned["attester"]["did"]],
                              "requiredProperties": ["Email"]}
    fields.update(changes)
    return CTypeRequirement(**fields)


def test_the_valid_presentation_the_checks_below_start_from(chain, provisioned, wallet):
    (verified,) = _verify(chain, _present(wallet))
    assert verified.owner.uri == wallet.did
    assert verified.attester.uri == provisioned["attester"]["did"]
    assert verified.ctype_hash == provisioned["ctype"]
    assert verified.root_hash == _held(wallet, TRUSTED).root_hash
    assert verified.web3name == provisioned["user"]["web3name"]
    assert verified.properties == {"Email": "some@example.org"}


def test_no_presentation_is_refused(chain):
    with refused("no credential was presented"):
        verify_presentations([], CHALLENGE, chain)


def test_two_presentations_of_one_owner_are_all_verified(chain, wallet):
    verified = _verify(chain, _present(wallet, TRUSTED), _present(wallet, UNTRUSTED))
    assert [v.root_hash for v in verified] == [_held(wallet, TRUSTED).root_hash,
                                               _held(wallet, UNTRUSTED).root_hash]


def test_presentations_of_two_owners_are_refused(chain, provisioned, wallet):
    other = DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"])
    theirs = make_credential(provisioned["ctype"], {"Email": "a@example.org"}, other.did.uri)
    their_presentation = make_presentation(theirs, other.authentication_key_uri.uri,
                                           other.authentication.sign, CHALLENGE)
    with refused("all presented credentials must belong to one DID"):
        _verify(chain, _present(wallet), their_presentation)


def test_an_owner_that_is_not_on_chain_is_refused(chain, provisioned):
    stranger = DidKeys.generate()
    credential = make_credential(provisioned["ctype"], {"Email": "x@example.org"},
                                 stranger.did.uri)
    data = make_presentation(credential, stranger.authentication_key_uri.uri,
                             stranger.authentication.sign, CHALLENGE)
    with refused(f"the owner DID {stranger.did.uri} does not exist on chain"):
        _verify(chain, data)


def test_a_signature_under_another_key_id_of_the_owner_is_refused(chain, wallet):
    """Signed by the authentication key, but naming the owner's key-agreement key."""
    data = _present(wallet, key_uri=wallet.keys.key_agreement_key_uri.uri)
    with refused("the credential is not signed with the owner's authentication key"):
        _verify(chain, data)


def test_a_stated_challenge_other_than_ours_is_refused(chain, wallet):
    """The signature covers our challenge, but the presentation says it answers another."""
    data = _present(wallet)
    data["claimerSignature"]["challenge"] = "0x" + "01" * 24
    with refused("the presentation answers another challenge"):
        _verify(chain, data)


def test_the_stated_challenge_in_upper_case_hex_is_refused(chain, wallet):
    """Hex has one spelling (docs/security.md); the lowercase one verifies."""
    data = _present(wallet)
    assert _verify(chain, copy.deepcopy(data))[0].owner.uri == wallet.did
    data["claimerSignature"]["challenge"] = CHALLENGE.upper().replace("0X", "0x")
    with pytest.raises(CredentialInvalid):
        _verify(chain, data)


def test_a_presentation_without_a_stated_challenge_still_signs_ours(chain, wallet):
    data = _present(wallet)
    del data["claimerSignature"]["challenge"]
    assert _verify(chain, data)[0].owner.uri == wallet.did
    other = _present(wallet, challenge="0x" + "01" * 24)
    del other["claimerSignature"]["challenge"]
    with pytest.raises(CredentialInvalid, match="claimer signature"):
        _verify(chain, other)


@pytest.fixture(scope="module")
def foreign_ctype_credential(chain, provisioned, wallet) -> Credential:
    """A claim under FOREIGN_CTYPE whose root hash is attested for the email CType.

    Fixed nonces give the same root hash every session, so `attest` (idempotent) runs once per
    chain even when `make mutation` runs this module in many sessions."""
    credential = make_credential(FOREIGN_CTYPE, {"Email": "some@example.org"}, wallet.did,
                                 nonce=lambda: "00000000-0000-4000-8000-000000000000")
    attest(chain, DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"]),
           sr25519_keypair(provisioned["payer"]["mnemonic"]), credential.root_hash,
           provisioned["ctype"])
    return credential


def test_an_attestation_for_another_ctype_is_refused(chain, wallet, foreign_ctype_credential):
    data = make_presentation(foreign_ctype_credential, wallet.keys.authentication_key_uri.uri,
                             wallet.keys.authentication.sign, CHALLENGE)
    with refused("the attestation is for a different CType"):
        _verify(chain, data)


# -- match_requirements ------------------------------------------------------------------------


def test_no_requirements_match_nothing(chain, wallet):
    assert match_requirements(_verify(chain, _present(wallet)), []) is None


def test_a_credential_of_another_ctype_does_not_match(chain, provisioned, wallet):
    verified = _verify(chain, _present(wallet))
    with refused("no presented credential has a requested CType"):
        match_requirements(verified, [_requirement(provisioned, cTypeHash="0x" + "ab" * 32)])


def test_the_ctype_is_compared_ignoring_hex_case(chain, provisioned, wallet):
    verified = _verify(chain, _present(wallet))
    upper = "0x" + provisioned["ctype"][2:].upper()
    assert match_requirements(verified, [_requirement(provisioned, cTypeHash=upper)])


def test_an_empty_trusted_attester_list_trusts_any_attester(chain, provisioned, wallet):
    verified = _verify(chain, _present(wallet, UNTRUSTED))
    match = match_requirements(verified, [_requirement(provisioned, trustedAttesters=[])])
    assert match is verified[0]


def test_the_first_credential_meeting_any_requirement_is_chosen(chain, provisioned, wallet):
    verified = _verify(chain, _present(wallet, UNTRUSTED), _present(wallet, TRUSTED))
    requirements = [_requirement(provisioned, requiredProperties=["Phone"]),
                    _requirement(provisioned)]
    assert match_requirements(verified, requirements) is verified[1]


def test_the_reason_names_the_last_check_that_failed(chain, provisioned, wallet):
    verified = _verify(chain, _present(wallet, UNTRUSTED))
    with refused("required properties are not disclosed: Phone, Fax"):
        match_requirements(verified, [_requirement(provisioned, trustedAttesters=[],
                                                   requiredProperties=["Email", "Phone", "Fax"])])
    with refused("the credential's attester is not trusted by this application"):
        match_requirements(verified, [_requirement(provisioned)])


@pytest.mark.parametrize("unfit", [
    {"ctype_hash": "0x" + "ab" * 32},
    {"attester": DidKeys.from_mnemonic("bottom drive obey lake curtain smoke basket hold race "
                                       "lonely fit walk").did},
    {"properties": {}},
])
def test_a_credential_that_does_not_fit_is_skipped_for_the_next_one(chain, provisioned, wallet,
                                                                     unfit):
    """One requirement, two credentials: the first fails one rule, the second meets them all."""
    (real,) = _verify(chain, _present(wallet))
    assert match_requirements([replace(real, **unfit), real], [_requirement(provisioned)]) is real


@pytest.mark.parametrize(("signature", "reason"), [
    ("0xzz", "signature is not lowercase hex with an even number of digits"),
    ("abcd", "signature must be a 0x-prefixed hex string"),
])
def test_a_signature_that_is_not_hex_is_refused_naming_it(chain, wallet, signature, reason):
    data = _present(wallet)
    data["claimerSignature"]["signature"] = signature
    with refused(f"claimer signature: {reason}"):
        _verify(chain, data)


def test_a_signature_by_another_did_is_refused_naming_it(chain, provisioned, wallet):
    other = DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"])
    data = make_presentation(_held(wallet, TRUSTED), other.authentication_key_uri.uri,
                             other.authentication.sign, CHALLENGE)
    with refused("the credential is signed by another DID than its owner"):
        _verify(chain, data)


def test_a_key_uri_that_is_not_one_is_refused_naming_it(chain, wallet):
    data = _present(wallet, key_uri="did:kilt:not-an-address#0x00")
    with pytest.raises(CredentialInvalid, match=r"^claimer signature: "):
        _verify(chain, data)


def test_a_claim_owner_that_is_not_a_full_did_is_refused_naming_it(chain, provisioned, wallet):
    """Integrity holds (the owner string is hashed like any other), but it names no full DID."""
    credential = make_credential(provisioned["ctype"], {"Email": "x@example.org"},
                                 "did:kilt:light-not-full")
    with pytest.raises(CredentialInvalid, match=r"^claim owner: "):
        _verify(chain, _present_credential(wallet, credential))


def _present_credential(wallet: Wallet, credential: Credential) -> dict[str, Any]:
    return make_presentation(credential, wallet.keys.authentication_key_uri.uri,
                             wallet.keys.authentication.sign, CHALLENGE)


def test_a_revoked_or_unattested_credential_is_refused_naming_it(chain, provisioned, wallet):
    with refused("the credential's attestation has been revoked"):
        _verify(chain, _present(wallet, "Email (revoked)"))
    fresh = make_credential(provisioned["ctype"], {"Email": "never@example.org"}, wallet.did)
    with refused("the credential is not attested on chain"):
        _verify(chain, _present_credential(wallet, fresh))

"""The credential behind a grant is re-checked on chain whenever the grant is used after the
login: once its attester revokes the attestation (a real `attestation.revoke` on the dev
chain), refresh at `/token` gets `invalid_grant`, OpenDID's `/api/v1/refresh` its 401,
userinfo a 401 and introspection `{"active": false}`, while grants of other credentials go on.
The check itself: revoked, missing, another CType or another attester is invalid; a DID-only
login needs no chain; an unreachable chain fails closed (503), never open."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import SECRET, bind_server, serve_apps, write_test_config
from opendid.application import create_app
from opendid.devtools.login_driver import LoginDriver
from opendid.devtools.wallet import HeldCredential, Wallet
from opendid.kilt.chain import ChainClient
from opendid.kilt.credentials import make_credential
from opendid.kilt.errors import ChainUnavailable
from opendid.kilt.extrinsics import attest, revoke
from opendid.kilt.keys import DidKeys, sr25519_keypair
from opendid.login.identity import Identity
from opendid.login.revalidation import CredentialCheck
from tests.test_introspection import INACTIVE, introspect
from tests.test_refresh import at_api, at_token, login_tokens, pair, userinfo_status

UNREACHABLE = "ws://127.0.0.1:9"  # discard port: nothing listens


def fresh_wallet(chain: ChainClient, provisioned: dict[str, Any]) -> tuple[Wallet, str]:
    """The user's wallet holding one credential made and attested just for this test, so that
    revoking it touches no credential other tests log in with; (wallet, root hash)."""
    attester = DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"])
    payer = sr25519_keypair(provisioned["payer"]["mnemonic"])
    credential = make_credential(provisioned["ctype"],
                                 {"Email": f"recheck-{uuid.uuid4().hex[:8]}@example.org"},
                                 provisioned["user"]["did"])
    attest(chain, attester, payer, credential.root_hash, provisioned["ctype"])
    wallet = Wallet(provisioned["user"]["mnemonic"],
                    [HeldCredential("Email (to be revoked)", attester.did.uri, credential)],
                    web3name=provisioned["user"]["web3name"])
    return wallet, credential.root_hash


def test_a_revoked_credential_ends_refresh_userinfo_and_introspection(opendid, chain,
                                                                      provisioned, driver):
    wallet, root_hash = fresh_wallet(chain, provisioned)
    fresh = LoginDriver(opendid.url, wallet, chain)
    try:
        # one grant per place that checks, so each refusal comes from that place's own check
        at_token_grant = login_tokens(fresh, "standard-client")
        userinfo_grant = login_tokens(fresh, "standard-client")
        api_grant = login_tokens(fresh, "opendid-client")
        introspected = login_tokens(fresh, "standard-client")
    finally:
        fresh.http.close()
    other = login_tokens(driver, "standard-client")  # the session's own trusted credential

    # before: every grant works, and refresh keeps working (rotating)
    first = at_token(fresh, at_token_grant["refresh_token"], "standard-client")
    assert first.status_code == 200, first.text
    _, refresh_token = pair(first)
    assert userinfo_status(fresh, userinfo_grant["access_token"]) == 200
    assert introspect(fresh, introspected["access_token"], "es-client").json()["active"]

    revoke(chain, DidKeys.from_mnemonic(provisioned["attester"]["mnemonic"]),
           sr25519_keypair(provisioned["payer"]["mnemonic"]), root_hash)
    found = chain.attestation(root_hash)
    assert found is not None and found.revoked

    refused = at_token(fresh, refresh_token, "standard-client")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert "revoked" in refused.json()["error_description"]
    assert userinfo_status(fresh, userinfo_grant["access_token"]) == 401
    api = at_api(fresh, api_grant["refresh_token"])
    assert (api.status_code, api.text) == (401, "Invalid token")
    assert introspect(fresh, introspected["access_token"], "es-client").json() == INACTIVE

    # each refusal ended its grant: the refresh token's grant is gone for userinfo too
    assert userinfo_status(fresh, at_token_grant["access_token"]) == 401
    # a grant of another, still attested credential of the same user goes on
    assert userinfo_status(driver, other["access_token"]) == 200
    assert at_token(driver, other["refresh_token"], "standard-client").status_code == 200


def _identity(provisioned: dict[str, Any], **changes: Any) -> Identity:
    trusted = provisioned["credentials"]["trusted"]
    fields: dict[str, Any] = {
        "did": provisioned["user"]["did"], "web3name": None,
        "root_hash": trusted["rootHash"], "ctype_hash": provisioned["ctype"],
        "attester": provisioned["attester"]["did"]}
    fields.update(changes)
    return Identity(**fields)


def test_the_check_reads_the_attestation_as_it_is_now(chain, provisioned):
    check = CredentialCheck(chain)
    assert check.still_valid(_identity(provisioned))
    # the provisioned credential whose attestation was revoked
    revoked = provisioned["credentials"]["revoked"]["rootHash"]
    assert not check.still_valid(_identity(provisioned, root_hash=revoked))
    # an attestation that is not (or no longer) on chain
    assert not check.still_valid(_identity(provisioned, root_hash="0x" + "ab" * 32))
    # the same root hash attested for another CType, or by another attester, is not the
    # attestation the login verified
    assert not check.still_valid(_identity(provisioned, ctype_hash="0x" + "cd" * 32))
    assert not check.still_valid(_identity(provisioned,
                                           attester=provisioned["untrustedAttester"]["did"]))


def test_a_did_only_login_needs_no_chain_and_a_credential_fails_closed(provisioned):
    unreachable = ChainClient(UNREACHABLE, timeout=2.0)
    try:
        check = CredentialCheck(unreachable)
        assert check.still_valid(Identity(provisioned["user"]["did"], None))
        with pytest.raises(ChainUnavailable):
            check.still_valid(_identity(provisioned))
    finally:
        unreachable.close()


def test_userinfo_and_refresh_answer_503_when_the_chain_cannot_be_read(provisioned,
                                                                       tmp_path: Path):
    """Fail closed: a credential that cannot be re-checked is not taken as valid; the grant is
    kept (the chain may be back in a moment)."""
    server = bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_test_config(provisioned, tmp_path / "config.yaml", url, [url + "/cb"])
    app = create_app(config, instance_path=tmp_path / "instance",
                     chain=ChainClient(UNREACHABLE, timeout=2.0))
    server.app = app
    services = app.extensions["opendid"]
    identity = _identity(provisioned).to_dict()
    data = {"identity": identity, "scope": "openid"}
    services.grants.save_token("an-access-token", "access", "g1", "standard-client", data, 600)
    services.grants.save_token("a-refresh-token", "refresh", "g1", "standard-client", data, 600)
    with serve_apps(server):
        info = requests.get(url + "/api/v1/userinfo", timeout=30,
                            headers={"Authorization": "Bearer an-access-token"})
        assert info.status_code == 503
        refreshed = requests.post(url + "/api/v1/token", timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": "a-refresh-token",
            "client_id": "standard-client", "client_secret": SECRET})
        assert refreshed.status_code == 503
    assert services.grants.active_token("an-access-token", "access") is not None
    assert services.grants.active_token("a-refresh-token", "refresh") is not None
    services.chain.close()

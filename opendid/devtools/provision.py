"""`opendid devchain provision`: populate a dev chain through real extrinsics.

Creates the service DID, a trusted and an untrusted attester, the email CType, a user DID
(Sporran derivations), an email credential attested by the trusted attester, one by the
untrusted attester, one whose attestation is revoked, and the user's web3name. Writes the
service config, the user's wallet file and a state file describing everything made.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from substrateinterface import Keypair

from opendid.devtools.funding import fund
from opendid.kilt.chain import ChainClient
from opendid.kilt.credentials import make_credential
from opendid.kilt.extrinsics import add_ctype, attest, claim_web3name, create_did, revoke
from opendid.kilt.keys import DidKeys, sr25519_keypair
from opendid.private_files import write_private
from opendid.provisioning import setup_service

log = logging.getLogger(__name__)

EMAIL_CTYPE = {
    "$schema": "http://kilt-protocol.org/draft-01/ctype#",
    "title": "Email",
    "properties": {"Email": {"type": "string"}},
    "type": "object",
}
DEMO_CLIENT_ID = "demo-client"


@dataclass
class Identities:
    """Mnemonics of the accounts and DIDs to provision; fresh unless given (tests reuse vectors)."""

    payer: str
    service: str
    attester: str
    untrusted_attester: str
    user: str
    web3name: str = "demo-user"
    email: str = "user@example.org"

    @classmethod
    def fresh(cls) -> Identities:
        new = Keypair.generate_mnemonic
        suffix = uuid.uuid4().hex[:6]
        return cls(new(), new(), new(), new(), new(), web3name=f"demo-user-{suffix}")


def provision(client: ChainClient, out_dir: Path, ids: Identities, origin: str,
              redirect_urls: list[str]) -> dict[str, Any]:
    """Populate the dev chain and write config.yaml, wallet.json and state.json to `out_dir`."""
    payer = sr25519_keypair(ids.payer)
    fund(client, payer.ss58_address)
    attester = DidKeys.from_mnemonic(ids.attester)
    untrusted = DidKeys.from_mnemonic(ids.untrusted_attester)
    user = DidKeys.from_mnemonic(ids.user)
    service_keys = DidKeys.from_mnemonic(ids.service)
    create_did(client, user, payer, assertion=False)
    for keys in (attester, untrusted):
        create_did(client, keys, payer)
    ctype = add_ctype(client, attester, payer, EMAIL_CTYPE)

    owner = user.did.uri
    trusted = make_credential(ctype, {"Email": ids.email}, owner)
    attest(client, attester, payer, trusted.root_hash, ctype)
    untrusted_cred = make_credential(ctype, {"Email": "untrusted@example.org"}, owner)
    attest(client, untrusted, payer, untrusted_cred.root_hash, ctype)
    revoked = make_credential(ctype, {"Email": "revoked@example.org"}, owner)
    attest(client, attester, payer, revoked.root_hash, ctype)
    revoke(client, attester, payer, revoked.root_hash)
    claim_web3name(client, user, payer, ids.web3name)

    client_secret = uuid.uuid4().hex + uuid.uuid4().hex
    clients = {
        DEMO_CLIENT_ID: {
            "requirements": [{
                "cTypeHash": ctype,
                "trustedAttesters": [attester.did.uri],
                "requiredProperties": ["Email"],
            }],
            "redirectUrls": redirect_urls,
            "clientSecret": client_secret,
            # ES256: a fifth of RS256's signing cost, and every OIDC library verifies it
            "idTokenSignedResponseAlg": "ES256",
            # the demo app offers the implicit flow too (standard clients default to code)
            "responseTypes": ["code", "id_token"],
        },
    }
    setup = setup_service(client, payer, out_dir, client.url, origin, service_keys, clients)

    wallet = {
        "name": "Dev wallet",
        "mnemonic": ids.user,
        "did": owner,
        "web3name": ids.web3name,
        "credentials": [
            {"label": "Email (trusted attester)", "attester": attester.did.uri,
             "credential": trusted.data},
            {"label": "Email (untrusted attester)", "attester": untrusted.did.uri,
             "credential": untrusted_cred.data},
            {"label": "Email (revoked)", "attester": attester.did.uri,
             "credential": revoked.data},
        ],
    }
    _write_private(out_dir / "wallet.json", wallet)
    state = {
        "chain": client.url,
        "config": str(setup.config_path),
        "wallet": str(out_dir / "wallet.json"),
        "payer": {"address": payer.ss58_address, "mnemonic": ids.payer},
        "service": {"did": service_keys.did.uri, "mnemonic": ids.service},
        "attester": {"did": attester.did.uri, "mnemonic": ids.attester},
        "untrustedAttester": {"did": untrusted.did.uri, "mnemonic": ids.untrusted_attester},
        "user": {"did": owner, "mnemonic": ids.user, "web3name": ids.web3name},
        "ctype": ctype,
        "credentials": {
            "trusted": trusted.data,
            "untrusted": untrusted_cred.data,
            "revoked": revoked.data,
        },
        "client": {"id": DEMO_CLIENT_ID, "secret": client_secret, "redirectUrls": redirect_urls},
    }
    _write_private(out_dir / "state.json", state)
    log.info("provisioned dev chain %s into %s", client.url, out_dir)
    return state


def _write_private(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2))

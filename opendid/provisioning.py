"""`opendid setup`: create the service's full DID on a KILT network and write its config.

The same code runs against spiritnet, peregrine and the dev chain; the payer account pays fees
and deposits. An existing DID (same mnemonic) is reused, not recreated.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from substrateinterface import Keypair

from opendid.config import generate_secret, write_config
from opendid.kilt.chain import ChainClient
from opendid.kilt.encoding import to_hex
from opendid.kilt.extrinsics import create_did
from opendid.kilt.keys import DidKeys
from opendid.private_files import write_private

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSetup:
    keys: DidKeys
    created: bool
    config_path: Path
    secrets_path: Path


def service_config(keys: DidKeys, endpoint: str, origin: str,
                   clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenDID-format config for the service DID `keys` (fresh session and JWT secrets)."""
    did = keys.did.uri
    return {
        "host": "0.0.0.0",
        "port": 3001,
        "production": False,
        "kiltEndpoint": endpoint,
        "issuer": origin,
        "session": {
            "keyUri": keys.key_agreement_key_uri.uri,
            "naclSecretKey": to_hex(keys.key_agreement_secret),
            "naclPublicKey": to_hex(keys.key_agreement_public),
            "sessionKey": to_hex(secrets.token_bytes(64)),
            "sessionTtl": 3600,
        },
        "jwt": {
            "tokenIssuer": did,
            "accessTokenLifetime": 300,
            "accessTokenAudience": "application",
            "refreshTokenLifetime": 3600,
            "refreshTokenAudience": "authentication",
            "secretKey": generate_secret(48),
            "publicKey": "",
            "algorithm": "HS256",
        },
        "wellKnownDid": {
            "did": did,
            "origin": origin,
            "keyUri": keys.assertion_key_uri.uri,
            "seed": keys.mnemonic + "//did//assertion//0",
        },
        "clients": clients or {},
    }


def write_secrets(path: Path, keys: DidKeys) -> None:
    """The service DID's mnemonic, from which every key can be re-derived (mode 0600)."""
    write_private(path, json.dumps({"did": keys.did.uri, "mnemonic": keys.mnemonic}, indent=2))


def setup_service(client: ChainClient, payer: Keypair, out_dir: Path, endpoint: str,
                  origin: str, keys: DidKeys | None = None,
                  clients: dict[str, Any] | None = None) -> ServiceSetup:
    """Create (or reuse) the service DID and write `config.yaml` and `secrets.json`."""
    secrets_path = out_dir / "secrets.json"
    if keys is None and secrets_path.exists():
        keys = DidKeys.from_mnemonic(json.loads(secrets_path.read_text())["mnemonic"])
        log.info("reusing the service DID in %s", secrets_path)
    keys = keys or DidKeys.generate()
    created = create_did(client, keys, payer)
    write_secrets(secrets_path, keys)
    config_path = out_dir / "config.yaml"
    write_config(config_path, service_config(keys, endpoint, origin, clients))
    return ServiceSetup(keys, created, config_path, secrets_path)

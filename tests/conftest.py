"""Session fixtures: the SDK vectors, a real dev chain (chopsticks) and its provisioning.

The dev chain is started once per test session on a free port, or taken from
OPENDID_CHAIN_URL. It is provisioned by the project's own provisioning code with the vectors'
mnemonics, so live reads can be compared with `chain-storage.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendid.devtools.devchain import PROJECT_ROOT, DevChain
from opendid.devtools.provision import Identities, provision
from opendid.kilt.chain import ChainClient
from opendid.kilt.extrinsics import attest
from opendid.kilt.keys import DidKeys, sr25519_keypair

VECTORS = PROJECT_ROOT.parent / "shared" / "kilt" / "vectors"
OUTPUT = PROJECT_ROOT / "test-output"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return {
        name: load_vector(f"{name}.json")
        for name in ("key-derivation", "light-did", "credential", "nacl-box",
                     "chain-storage", "provisioned-state")
    }


@pytest.fixture(scope="session")
def chain_url() -> Iterator[str]:
    given = os.environ.get("OPENDID_CHAIN_URL")
    if given:
        yield given
        return
    OUTPUT.mkdir(exist_ok=True)
    with DevChain(log_file=OUTPUT / "chopsticks.log") as chain:
        yield chain.url


@pytest.fixture(scope="session")
def chain(chain_url: str) -> Iterator[ChainClient]:
    client = ChainClient(chain_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def provisioned(chain: ChainClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev chain populated as `opendid devchain provision` does, with the vectors' identities.

    Also attests the vectors' own email credential, so its attestation can be read back.
    """
    state = load_vector("provisioned-state.json")
    ids = Identities(
        payer=state["payment"]["mnemonic"],
        service=state["opendid"]["mnemonic"],
        attester=state["attester"]["mnemonic"],
        untrusted_attester=DidKeys.generate().mnemonic,
        user=state["user"]["mnemonic"],
        web3name=state["verification"]["web3name"],
        email="some@example.org",
    )
    out = tmp_path_factory.mktemp("provisioned")
    result = provision(chain, out, ids, "http://localhost:3001",
                       ["http://localhost:1606/callback"])
    vector_credential = load_vector("credential.json")["email"]["credential"]
    attest(chain, DidKeys.from_mnemonic(ids.attester), sr25519_keypair(ids.payer),
           vector_credential["rootHash"], vector_credential["claim"]["cTypeHash"])
    result["out"] = str(out)
    result["vectorCredential"] = vector_credential
    return result


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT

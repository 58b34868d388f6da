"""Shared pytest fixtures (tests/ and e2e/): SDK vectors, the dev chain, provisioning, servers.

The dev chain is started once per test session on a free port, or taken from
OPENDID_CHAIN_URL. It is provisioned by the project's own provisioning code with the vectors'
mnemonics, so live reads can be compared with `chain-storage.json`. With OPENDID_PROVISIONED
(a folder) the first session provisions into it and later sessions on the same chain reuse it:
`make mutation` runs one pytest session per mutant against one chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.serving import BaseWSGIServer, make_server

from opendid.application import create_app
from opendid.devtools.devchain import PROJECT_ROOT, DevChain, shared_dir
from opendid.devtools.login_driver import LoginDriver
from opendid.devtools.provision import Identities, provision
from opendid.devtools.redis_server import RedisServer
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.kilt.extrinsics import attest
from opendid.kilt.keys import DidKeys, sr25519_keypair
from opendid.store.grants import digest
from opendid.store.redis_grants import RedisGrantStore
from opendid.store.redis_onetime import RedisOneTimeStore

VECTORS = shared_dir() / "kilt" / "vectors"
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


# The tests' own chain client (provisioning, attesting, reading back) waits for blocks: on a
# loaded machine chopsticks can take several seconds per block, so it waits as long as it must.
# Tests that time the client's failure handling build their own clients with short timeouts.
TEST_CHAIN_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port for the session, torn down after."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def chain(chain_url: str) -> Iterator[ChainClient]:
    client = ChainClient(chain_url, timeout=TEST_CHAIN_TIMEOUT)
    yield client
    client.close()


@pytest.fixture(scope="session")
def provisioned(chain: ChainClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev chain populated as `opendid devchain provision` does, with the vectors' identities.

    Also attests the vectors' own email credential, so its attestation can be read back.
    """
    reuse = os.environ.get("OPENDID_PROVISIONED")
    saved = Path(reuse) / "provisioned.json" if reuse else None
    if saved and saved.exists():
        earlier: dict[str, Any] = json.loads(saved.read_text())
        if earlier["chain"] == chain.url:
            return earlier
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
    out = Path(reuse) if reuse else tmp_path_factory.mktemp("provisioned")
    out.mkdir(parents=True, exist_ok=True)
    result = provision(chain, out, ids, "http://localhost:3001",
                       ["http://localhost:1606/callback"])
    vector_credential = load_vector("credential.json")["email"]["credential"]
    attest(chain, DidKeys.from_mnemonic(ids.attester), sr25519_keypair(ids.payer),
           vector_credential["rootHash"], vector_credential["claim"]["cTypeHash"])
    result["out"] = str(out)
    result["vectorCredential"] = vector_credential
    if saved:
        saved.write_text(json.dumps(result))
    return result


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


# -- the OpenID provider over real HTTP ---------------------------------------------------------


SECRET = "a-long-test-client-secret-0123456789"
OPENDID_REDIRECT = "http://127.0.0.1:1606/callback.html"
STANDARD_REDIRECT = "http://127.0.0.1:1607/cb"


def _placeholder(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def bind_server() -> BaseWSGIServer:
    """A threaded HTTP server on a free port; set `.app` before serving."""
    return make_server("127.0.0.1", 0, _placeholder, threaded=True)


def start_server(server: BaseWSGIServer) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def stop_server(server: BaseWSGIServer) -> None:
    """Stops serving (waits for the loop to end) and closes the listening socket."""
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def serve_apps(*servers: BaseWSGIServer) -> Iterator[list[str]]:
    """Serves each bound server (its `.app` set) for the block; stops and closes them after."""
    try:
        yield [start_server(server) for server in servers]
    finally:
        for server in servers:
            stop_server(server)


def extra_clients(provisioned: dict[str, Any], rp_redirects: list[str]) -> dict[str, Any]:
    requirement = [{"cTypeHash": provisioned["ctype"],
                    "trustedAttesters": [provisioned["attester"]["did"]],
                    "requiredProperties": ["Email"]}]
    strict = [{**requirement[0], "requiredProperties": ["Email", "Phone"]}]
    return {
        "opendid-client": {"requirements": requirement, "redirectUrls": [OPENDID_REDIRECT],
                           "clientSecret": SECRET},
        "standard-client": {"requirements": requirement, "redirectUrls": [STANDARD_REDIRECT],
                            "clientSecret": SECRET, "idTokenSignedResponseAlg": "RS256",
                            "responseTypes": ["code", "id_token", "id_token token"]},
        "es-client": {"requirements": requirement, "redirectUrls": [STANDARD_REDIRECT],
                      "clientSecret": SECRET, "idTokenSignedResponseAlg": "ES256"},
        "eddsa-client": {"requirements": requirement, "redirectUrls": [STANDARD_REDIRECT],
                         "clientSecret": SECRET, "idTokenSignedResponseAlg": "EdDSA"},
        "public-client": {"requirements": requirement, "redirectUrls": [STANDARD_REDIRECT],
                          "idTokenSignedResponseAlg": "RS256"},
        "did-client": {"redirectUrls": [OPENDID_REDIRECT], "clientSecret": SECRET},
        "strict-client": {"requirements": strict, "redirectUrls": [OPENDID_REDIRECT],
                          "clientSecret": SECRET},
        "rp-client": {"requirements": requirement, "redirectUrls": rp_redirects,
                      "clientSecret": SECRET, "idTokenSignedResponseAlg": "RS256",
                      "responseTypes": ["code", "id_token"]},
        # public, no idTokenSignedResponseAlg: still gets JWKS-signed (RS256) tokens
        "bare-public-client": {"requirements": requirement, "redirectUrls": [STANDARD_REDIRECT]},
        # OpenDID-style, limited to the code flow
        "code-only-client": {"requirements": requirement, "redirectUrls": [OPENDID_REDIRECT],
                             "clientSecret": SECRET, "responseTypes": ["code"]},
        # OpenDID-style, opted in to refreshing at /token with client authentication only
        "opt-in-client": {"requirements": requirement, "redirectUrls": [OPENDID_REDIRECT],
                          "clientSecret": SECRET, "refreshRequiresClientAuth": True},
    }


def write_test_config(provisioned: dict[str, Any], path: Path, issuer: str,
                      rp_redirects: list[str], clients: dict[str, Any] | None = None,
                      **overrides: Any) -> Path:
    """The provisioned config with the test clients (`clients`: more of them) and top-level
    `overrides`."""
    data = yaml.safe_load(Path(provisioned["config"]).read_text())
    data["issuer"] = issuer
    data["clients"].update(extra_clients(provisioned, rp_redirects))
    data["clients"].update(clients or {})
    data.update(overrides)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def serve_opendid(provisioned: dict[str, Any], folder: Path, server: BaseWSGIServer,
                  rp_redirects: list[str], *others: BaseWSGIServer, dev: bool = False,
                  clients: dict[str, Any] | None = None, **overrides: Any) -> Iterator[Any]:
    """OpenDID (in-process, real HTTP) on the bound `server`, its config and instance in
    `folder` (`write_test_config`'s clients and overrides), in dev mode (the dev wallet) if
    asked; served with `others` (their apps set) for the block, its chain client closed after.
    Yields the app."""
    url = f"http://127.0.0.1:{server.server_port}"
    path = write_test_config(provisioned, folder / "config.yaml", url, rp_redirects, clients,
                             **overrides)
    options: dict[str, Any] = {"dev": True, "wallet_path": provisioned["wallet"]} if dev else {}
    app = create_app(path, instance_path=folder / "instance", **options)
    server.app = app
    try:
        with serve_apps(server, *others):
            yield app
    finally:
        app.extensions["opendid"].chain.close()


def expire_one_time(services: Any, kind: str, key: str) -> None:
    """Make a one-time value expire, as time would, in whichever store holds it."""
    store = services.onetime
    if isinstance(store, RedisOneTimeStore):
        store.client.pexpireat(store._key(kind, key), 1)
    else:
        store.db.connect().execute("UPDATE one_time SET expires_at = 0 WHERE kind = ? AND key = ?",
                                   (kind, key))


def _expire_grant_record(services: Any, kind: str, value: str) -> None:
    """Make a code or token expire, as time would (its record stays), in either store."""
    store = services.grants
    if isinstance(store, RedisGrantStore):
        store.client.hset(f"{store.prefix}{kind}:{digest(value)}", "expires_at", 0)
    else:
        table = {"code": "codes", "token": "tokens"}[kind]
        store.db.connect().execute(
            f"UPDATE {table} SET expires_at = 0 WHERE {kind}_hash = ?", (digest(value),))


def expire_code(services: Any, code: str) -> None:
    _expire_grant_record(services, "code", code)


def expire_token(services: Any, token: str) -> None:
    _expire_grant_record(services, "token", token)


@dataclass
class Opendid:
    """A running OpenDID (in-process, real HTTP) with the files it was made from."""

    url: str
    config_path: Path
    instance: Path
    provisioned: dict[str, Any]
    rp_url: str
    app: Any = field(repr=False, default=None)

    @property
    def services(self) -> Any:
        return self.app.extensions["opendid"]


def store_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Config overrides for the state store the session tests: SQLite unless
    OPENDID_TEST_STORE=redis (`make test` runs the contract and security tests both ways)."""
    if os.environ.get("OPENDID_TEST_STORE") == "redis":
        return {"store": {"url": request.getfixturevalue("redis_url")}}
    return {}


@pytest.fixture(scope="session")
def opendid(provisioned: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Opendid]:
    from demo_rp.app import create_demo_app

    server, rp_server = bind_server(), bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    rp_url = f"http://127.0.0.1:{rp_server.server_port}"
    folder = tmp_path_factory.mktemp("opendid")
    rp_server.app = create_demo_app(url, "rp-client", SECRET, rp_url)
    with serve_opendid(provisioned, folder, server,
                       [f"{rp_url}/callback", f"{rp_url}/callback/implicit"], rp_server,
                       **store_overrides(request)) as app:
        yield Opendid(url, folder / "config.yaml", folder / "instance", provisioned, rp_url, app)


@pytest.fixture(scope="session")
def wallet(provisioned: dict[str, Any]) -> Wallet:
    return Wallet.load(provisioned["wallet"])


@pytest.fixture()
def driver(opendid: Opendid, wallet: Wallet, chain: ChainClient) -> Iterator[LoginDriver]:
    driver = LoginDriver(opendid.url, wallet, chain)
    yield driver
    driver.http.close()

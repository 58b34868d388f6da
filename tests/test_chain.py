"""The chain client against the live dev chain, compared with the SDK's reads of the same state."""

import base64
import hashlib
import re
import socket
import threading
import time

import pytest
from scalecodec.base import RuntimeConfigurationObject
from substrateinterface.storage import StorageKey

from opendid.devtools.devchain import DevChain, free_port
from opendid.kilt.chain import (
    ChainClient,
    attestation_from_storage,
    did_document_from_storage,
    resolve_endpoint,
    web3name_from_storage,
)
from opendid.kilt.dids import parse_full_did
from opendid.kilt.encoding import from_hex, to_hex
from opendid.kilt.errors import ChainError, ChainUnavailable, KiltError


def _assert_document_matches_sdk(document, sdk):
    assert to_hex(document.authentication.id) == sdk["authentication"][0]["id"][1:]
    assert to_hex(document.authentication.public_key) == sdk["authentication"][0]["publicKey"]
    assert document.authentication.type == sdk["authentication"][0]["type"]
    assert [(to_hex(k.id), to_hex(k.public_key)) for k in document.key_agreement] == [
        (k["id"][1:], k["publicKey"]) for k in sdk.get("keyAgreement", [])]
    assertion = sdk.get("assertionMethod")
    if assertion:
        assert to_hex(document.assertion_method.id) == assertion[0]["id"][1:]
        assert to_hex(document.assertion_method.public_key) == assertion[0]["publicKey"]
    else:
        assert document.assertion_method is None


@pytest.mark.parametrize("entry", ["didUser", "didOpendid", "didAttester"])
def test_raw_did_records_of_the_sdk_decode_like_the_sdk(chain, vectors, entry):
    record = vectors["chain-storage"]["entries"][entry]
    did = parse_full_did(record["args"][0])
    value = chain.decode("Did", "Did", did.address, record["scale"])
    document = did_document_from_storage(did, value)
    _assert_document_matches_sdk(document, record["sdk"])
    assert document.last_tx_counter == record["sdk"]["lastTxCounter"]


@pytest.mark.parametrize("entry", ["didUser", "didOpendid", "didAttester"])
def test_live_did_documents_match_the_vectors(chain, provisioned, vectors, entry):
    record = vectors["chain-storage"]["entries"][entry]
    document = chain.did(record["args"][0])
    assert document is not None
    _assert_document_matches_sdk(document, record["sdk"])


def test_storage_keys_match_the_vectors(chain, vectors):
    record = vectors["chain-storage"]["entries"]["attestation"]
    with chain.substrate() as conn:
        key = chain._key(conn, "Attestation", "Attestations", record["args"][0])
    assert key.to_hex() == record["key"]


def test_keys_from_storage_plans_equal_substrate_interfaces_keys(chain, provisioned, vectors):
    """Every storage map the client reads: the planned key (metadata looked up once) is the
    key substrate-interface builds, and a missing entry still decodes to the map's default."""
    did = parse_full_did(provisioned["user"]["did"])
    wanted = [("Did", "Did", did.address), ("Web3Names", "Names", did.address),
              ("Web3Names", "Owner", vectors["chain-storage"]["entries"]["web3NameOfUser"]["sdk"]),
              ("Attestation", "Attestations", "0x" + "ab" * 32),
              ("Ctype", "Ctypes", "0x" + "cd" * 32)]
    with chain.substrate() as conn:
        for pallet, item, param in wanted:
            planned = chain._key(conn, pallet, item, param)
            again = chain._key(conn, pallet, item, param)
            reference = StorageKey.create_from_storage_function(
                pallet, item, [param], runtime_config=conn.runtime_config, metadata=conn.metadata)
            assert planned.to_hex() == again.to_hex() == reference.to_hex(), (pallet, item)
            assert planned.value_scale_type == reference.value_scale_type
            assert planned.decode_scale_value().value == reference.decode_scale_value().value
        with pytest.raises(ChainError, match=r"no storage map Did\.Nope"):
            chain._key(conn, "Did", "Nope", did.address)
    assert chain.attestation("0x" + "ab" * 32) is None


def test_attestation_live_and_raw_match_the_vectors(chain, provisioned, vectors):
    record = vectors["chain-storage"]["entries"]["attestation"]
    root = record["args"][0]
    expected = record["polkadotJs"]
    raw = attestation_from_storage(root, chain.decode("Attestation", "Attestations", root,
                                                      record["scale"]))
    live = chain.attestation(root)
    for attestation in (raw, live):
        assert attestation.ctype_hash == expected["ctypeHash"]
        assert attestation.attester.address == expected["attester"]
        assert attestation.revoked is False


def test_web3name_ctype_and_missing_did(chain, provisioned, vectors):
    entries = vectors["chain-storage"]["entries"]
    user = entries["web3NameOfUser"]["args"][0]
    assert chain.web3name(user) == entries["web3NameOfUser"]["sdk"]
    raw = chain.decode("Web3Names", "Names", parse_full_did(user).address,
                       entries["web3NameOfUser"]["scale"])
    assert web3name_from_storage(raw) == "peer-suite-user"
    assert chain.web3name_owner("peer-suite-user").uri == user
    ctype = chain.ctype(entries["ctype"]["args"][0])
    assert ctype.creator.address == entries["ctype"]["polkadotJs"]["creator"]
    missing = entries["didUserNotFound"]["args"][0].split(" ")[0]
    assert chain.did(missing) is None
    assert chain.attestation("0x" + "00" * 32) is None


def test_a_new_connection_keeps_the_type_registry_of_its_runtime(chain_url, provisioned,
                                                                  monkeypatch):
    """The types are built once per runtime: a reconnect (or a gunicorn worker's first
    connection after `load_runtime` in the master) reuses them instead of rebuilding."""
    client = ChainClient(chain_url, timeout=30)
    client.load_runtime()  # connect, build the types, close: as the master does before forking
    with client.substrate() as conn:
        before = conn.runtime_config.get_decoder_class("scale_info::0")
    rebuilt = []
    monkeypatch.setattr(RuntimeConfigurationObject, "update_from_scale_info_types",
                        lambda *args, **kwargs: rebuilt.append(args))
    monkeypatch.setattr(RuntimeConfigurationObject, "clear_type_registry",
                        lambda *args, **kwargs: rebuilt.append(args))
    client.close()
    user = parse_full_did(provisioned["user"]["did"])
    assert client.did(user).did == user  # a new connection decodes with the kept types
    with client.substrate() as conn:
        assert conn.runtime_config.get_decoder_class("scale_info::0") is before
    assert rebuilt == []
    client.close()


def test_unchanged_storage_bytes_are_decoded_once_changed_ones_again(chain_url, provisioned,
                                                                      vectors, monkeypatch):
    """Reads always go to the node; only the decoding of byte-identical values is reused."""
    client = ChainClient(chain_url, timeout=30)
    user = parse_full_did(provisioned["user"]["did"])
    decoded = []
    original = StorageKey.decode_scale_value

    def counting(self, data=None):
        decoded.append(self.value_scale_type)
        return original(self, data)

    monkeypatch.setattr(StorageKey, "decode_scale_value", counting)
    first, second = client.did(user), client.did(user)
    assert first == second and len(decoded) == 1
    record = vectors["chain-storage"]["entries"]["didAttester"]
    with client.substrate() as conn:
        key = client._key(conn, "Did", "Did", user.address)
        other = client._decoded(int(conn.runtime_version), key, record["scale"])
    assert len(decoded) == 2  # other bytes: decoded, not taken from the user's document
    assert did_document_from_storage(parse_full_did(record["args"][0]), other) != first
    client.close()


def test_login_records_are_one_round_trip(chain, provisioned):
    user = parse_full_did(provisioned["user"]["did"])
    root = provisioned["credentials"]["trusted"]["rootHash"]
    calls = []
    with chain.substrate() as conn:
        original = conn.rpc_request

        def counting(method, params, *args, **kwargs):
            calls.append(method)
            return original(method, params, *args, **kwargs)

        conn.rpc_request = counting
    try:
        records = chain.login_records(user, [root])
    finally:
        with chain.substrate() as conn:
            del conn.rpc_request
    assert calls == ["state_queryStorageAt"]
    assert records.did is not None and records.web3name == provisioned["user"]["web3name"]
    assert records.attestations[root].attester.uri == provisioned["attester"]["did"]


def test_named_endpoints_resolve():
    assert resolve_endpoint("spiritnet") == "wss://spiritnet.kilt.io:443"
    assert resolve_endpoint("peregrine") == "wss://peregrine.kilt.io:443/"
    assert resolve_endpoint("ws://127.0.0.1:1") == "ws://127.0.0.1:1"
    with pytest.raises(ValueError):
        resolve_endpoint("http://example.org")


def test_unreachable_node_fails_fast_and_then_immediately():
    client = ChainClient(f"ws://127.0.0.1:{free_port()}", timeout=1)
    started = time.monotonic()
    with pytest.raises(ChainUnavailable):
        client.did("did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTBZXKnWBcQqTh6H")
    with pytest.raises(ChainUnavailable):
        client.block_number()
    assert time.monotonic() - started < 3


def test_a_node_that_never_answers_does_not_hang_a_read():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    client = ChainClient(f"ws://127.0.0.1:{server.getsockname()[1]}", timeout=1)
    started = time.monotonic()
    with pytest.raises(ChainUnavailable):
        client.block_number()
    assert time.monotonic() - started < 5
    server.close()


def _node_answering(payload: bytes) -> socket.socket:
    """A WebSocket 'node' that completes the handshake, then answers each frame with one text
    frame carrying `payload` (so the client's own decoding is what is tested)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = re.search(rb"Sec-WebSocket-Key: *(\S+)", request, re.IGNORECASE).group(1)
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while conn.recv(65536):  # any request frame: the same answer
            conn.sendall(bytes([0x81, len(payload)]) + payload)

    threading.Thread(target=serve, daemon=True).start()
    return server


@pytest.mark.parametrize("payload", [b"\xff\xfe not utf-8", b"not json", b'{"jsonrpc": 1}'],
                         ids=["not-utf8", "not-json", "no-result"])
def test_a_node_answering_garbage_is_a_chain_error_not_a_crash(payload):
    """Frames are decoded without websocket-client's (slow, pure Python) UTF-8 validation: a
    frame that is not UTF-8 must still end as a chain error, like any other garbage."""
    server = _node_answering(payload)
    client = ChainClient(f"ws://127.0.0.1:{server.getsockname()[1]}", timeout=2)
    with pytest.raises(KiltError):
        client.block_number()
    server.close()


def test_client_reconnects_when_the_node_comes_back(output_dir):
    chain = DevChain(log_file=output_dir / "chopsticks-restart.log").start()
    # max_backoff=0: the client tries again on the next call, so once the node is back (start()
    # returns when it answers) one call must reconnect; nothing to wait out or retry.
    client = ChainClient(chain.url, timeout=30, max_backoff=0)
    try:
        assert client.block_number() >= 0
        chain.stop()
        with pytest.raises(ChainUnavailable):
            client.block_number()
        chain.start()
        assert client.block_number() >= 0
    finally:
        client.close()
        chain.stop()


def test_hex_helpers_used_by_the_client():
    assert from_hex(to_hex(b"\x00\x01")) == b"\x00\x01"

"""The KILT chain client: one long-lived, reconnecting connection per process.

Reads of DID documents, attestations, CTypes and web3names are batched into a single
``state_queryStorageAt`` round trip; storage keys and decoders come from runtime metadata that
is fetched once per runtime version (the original opens a connection and downloads metadata
inside every login). An unreachable node fails fast with `ChainUnavailable`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from substrateinterface import SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from substrateinterface.storage import StorageKey
from substrateinterface.utils import hasher
from websocket import WebSocketException

from opendid.kilt.dids import FullDid, full_did_from_account, parse_full_did
from opendid.kilt.encoding import KILT_SS58_PREFIX, address_to_account_id, from_hex, to_hex
from opendid.kilt.errors import ChainError, ChainUnavailable, KiltError

log = logging.getLogger(__name__)

NAMED_ENDPOINTS = {
    "spiritnet": "wss://spiritnet.kilt.io:443",
    "peregrine": "wss://peregrine.kilt.io:443/",
}
RUNTIME_CHECK_INTERVAL = 60.0
DECODED_KEPT = 1024  # storage values whose decoding is kept (a few KiB each at most)
KEYS_KEPT = 4096  # storage keys kept per storage map (about 200 bytes each)
P = ParamSpec("P")
R = TypeVar("R")
# A node that answers garbage is treated like one that stopped answering: UnicodeDecodeError
# is a text frame that is not UTF-8 (frames are decoded, not validated first: websocket-client's
# validator is pure Python and cost 5 % of a login's CPU), JSONDecodeError one that is not JSON.
NETWORK_ERRORS = (WebSocketException, OSError, TimeoutError, ConnectionError, BrokenPipeError,
                  UnicodeDecodeError, json.JSONDecodeError)


def resolve_endpoint(endpoint: str) -> str:
    """`spiritnet`, `peregrine` or a ws(s) URL, as OpenDID's `kiltEndpoint` allows."""
    url = NAMED_ENDPOINTS.get(endpoint, endpoint)
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"KILT endpoint must be spiritnet, peregrine or a ws:// URL, not {url!r}")
    return url


@dataclass(frozen=True)
class DidKey:
    """One public key of a DID document."""

    id: bytes
    type: str  # sr25519 | ed25519 | ecdsa | x25519
    public_key: bytes


@dataclass(frozen=True)
class DidDocument:
    """A full DID as stored in `Did.Did`: keys by id and by relationship."""

    did: FullDid
    authentication: DidKey
    key_agreement: tuple[DidKey, ...]
    assertion_method: DidKey | None
    capability_delegation: DidKey | None
    keys: dict[bytes, DidKey] = field(repr=False)
    last_tx_counter: int

    def key_agreement_key(self, key_id: bytes) -> DidKey | None:
        return next((k for k in self.key_agreement if k.id == key_id), None)


@dataclass(frozen=True)
class Attestation:
    """An attestation from `Attestation.Attestations(rootHash)`."""

    root_hash: str
    ctype_hash: str
    attester: FullDid
    revoked: bool


@dataclass(frozen=True)
class CType:
    hash: str
    creator: FullDid
    created_at: int


@dataclass(frozen=True)
class LoginRecords:
    """Everything one login reads from the chain, fetched in one round trip."""

    did: DidDocument | None
    web3name: str | None
    attestations: dict[str, Attestation | None]


class MetadataCache:
    """Decoded runtime metadata by spec version, for the whole process (substrate-interface
    takes it where it would take a dogpile cache region). Decoding costs tens of MiB and a
    second; with this a reconnect reuses the decoded copy, and a copy decoded before gunicorn
    forks (`ChainClient.load_runtime`) is shared by every worker's memory pages."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self._values.get(key)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value


METADATA = MetadataCache()


class SharedTypes(RuntimeConfigurationObject):
    """The SCALE type registry of one runtime, kept by a ChainClient across its connections.

    substrate-interface rebuilds the registry from the metadata on every connection: a second of
    CPU and about 50 MiB of a gunicorn worker's private memory. Built once in the master before
    forking (`ChainClient.load_runtime`), it is shared by every worker instead."""

    def __init__(self) -> None:
        super().__init__(ss58_format=KILT_SS58_PREFIX)
        self.loaded_for: Any = None  # the metadata whose types are loaded

    def add_portable_registry(self, metadata: Any, prefix: str | None = None) -> None:
        if metadata is not self.loaded_for:
            super().add_portable_registry(metadata, prefix=prefix)
            self.loaded_for = metadata


class _Connection(SubstrateInterface):  # type: ignore[misc]
    """A connection that keeps its SharedTypes when they were loaded for this runtime."""

    def reload_type_registry(self, use_remote_preset: bool = True,
                             auto_discover: bool = True) -> None:
        types = self.runtime_config
        if isinstance(types, SharedTypes):
            same = self.metadata is None or self.metadata is types.loaded_for  # not ==: that
            if types.loaded_for is not None and same:  # walks every type class (ABC checks)
                return  # a new connection to the same runtime: nothing to rebuild
            types.loaded_for = None  # first use, or a runtime upgrade
        super().reload_type_registry(use_remote_preset=use_remote_preset,
                                     auto_discover=auto_discover)


@dataclass(frozen=True)
class StoragePlan:
    """What building a key of one storage map needs, looked up in the metadata once: the
    lookup scans every pallet and every storage item, which cost more than the read itself."""

    pallet: str
    item: str
    function: Any  # the metadata's storage function (for decoding and its default value)
    value_type: str
    param_type: str
    hash_param: Callable[[bytes], bytes]
    prefix: bytes
    # param -> (its SCALE encoding, the storage key's bytes), for a returning user; used
    # under the chain client's lock
    known: dict[Any, tuple[Any, bytes]] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, metadata: Any, pallet: str, item: str) -> StoragePlan:
        """The plan of a one-parameter storage map `pallet.item` in this runtime's metadata."""
        found = metadata.get_metadata_pallet(pallet)
        function = found.get_storage_function(item) if found else None
        if function is None:
            raise ChainError(f"the runtime has no storage map {pallet}.{item}")
        (param_type,) = function.get_params_type_string()
        (hasher_name,) = function.get_param_hashers()
        prefix = hasher.xxh128(found.value["storage"]["prefix"].encode()) + hasher.xxh128(
            item.encode())
        return cls(pallet, item, function, function.get_value_type_string(), param_type,
                   HASHERS[hasher_name], prefix)

    def key(self, param: Any, metadata: Any, runtime_config: Any) -> StorageKey:
        """The storage key of `param`, as `StorageKey.create_from_storage_function` makes it."""
        key = StorageKey(self.pallet, self.item, [param], b"", self.value_type, metadata,
                         runtime_config)
        key.metadata_storage_function = self.function
        known = self.known.get(param) if isinstance(param, str) else None
        if known is None:
            encoded = runtime_config.create_scale_object(type_string=self.param_type).encode(
                key.convert_storage_parameter(self.param_type, param))
            known = (encoded, self.prefix + self.hash_param(encoded.data))
            if isinstance(param, str):
                if len(self.known) >= KEYS_KEPT:
                    self.known.pop(next(iter(self.known)), None)  # the oldest
                self.known[param] = known
        key.params_encoded = [known[0]]
        key.data = known[1]
        return key


HASHERS: dict[str, Callable[[bytes], bytes]] = {
    "Blake2_128Concat": hasher.blake2_128_concat,
    "Twox64Concat": hasher.two_x64_concat,
    "Identity": hasher.identity,
    "Blake2_128": hasher.blake2_128,
    "Blake2_256": hasher.blake2_256,
    "Twox128": hasher.xxh128,
}


class ChainObserver(Protocol):
    """Told of each storage read's duration and result (ok, unavailable, error) and of the
    connection going up or down: metrics, without this module knowing who keeps them."""

    def read(self, seconds: float, result: str) -> None: ...

    def connected(self, up: bool) -> None: ...


class ChainClient:
    """A thread-safe client for one KILT endpoint; connects lazily and reconnects with backoff."""

    def __init__(self, endpoint: str, timeout: float = 5.0, max_backoff: float = 5.0,
                 observer: ChainObserver | None = None) -> None:
        self.url = resolve_endpoint(endpoint)
        self.observer = observer
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._lock = threading.RLock()
        self._substrate: SubstrateInterface | None = None
        self._pid = 0
        self._retry_at = 0.0
        self._backoff = 0.0
        self._runtime_checked = 0.0
        self._plans: dict[tuple[int, str, str], StoragePlan] = {}  # under _lock
        self._types = SharedTypes()
        self._decodings: dict[tuple[int, str, str], Any] = {}  # under _lock

    # -- connection ---------------------------------------------------------------------------

    @contextmanager
    def substrate(self) -> Iterator[SubstrateInterface]:
        """The live connection, under the client's lock; network errors become ChainUnavailable."""
        with self._lock:
            conn = self._connection()
            try:
                yield conn
            except NETWORK_ERRORS as exc:
                self._drop(exc)
                raise ChainUnavailable(f"KILT node at {self.url} stopped answering") from None

    def _connection(self) -> SubstrateInterface:
        if self._substrate is not None and self._pid != os.getpid():
            self._substrate = None  # forked (gunicorn): never share a socket with the parent
        if self._substrate is None:
            now = time.monotonic()
            if now < self._retry_at:
                raise ChainUnavailable(f"KILT node at {self.url} is unreachable (retrying soon)")
            try:
                conn = _Connection(
                    url=self.url,
                    ss58_format=KILT_SS58_PREFIX,
                    ws_options={"timeout": self.timeout, "skip_utf8_validation": True},
                    auto_reconnect=False,
                    cache_region=METADATA,
                    runtime_config=self._types,
                )
                conn.init_runtime()
            except (*NETWORK_ERRORS, SubstrateRequestException) as exc:
                self._drop(exc)
                raise ChainUnavailable(f"KILT node at {self.url} is unreachable") from None
            self._substrate, self._pid = conn, os.getpid()
            self._backoff, self._runtime_checked = 0.0, time.monotonic()
            if self.observer is not None:
                self.observer.connected(True)
            log.info("connected to KILT node %s (runtime %s)", self.url, conn.runtime_version)
        elif time.monotonic() - self._runtime_checked > RUNTIME_CHECK_INTERVAL:
            self._refresh_runtime(self._substrate)
        return self._substrate

    def _refresh_runtime(self, conn: SubstrateInterface) -> None:
        """Reload metadata only when the runtime was upgraded."""
        try:
            version = conn.rpc_request("state_getRuntimeVersion", [])["result"]["specVersion"]
            if version != conn.runtime_version:
                log.info("KILT runtime upgraded %s -> %s", conn.runtime_version, version)
                conn.init_runtime()
        except NETWORK_ERRORS as exc:
            self._drop(exc)
            raise ChainUnavailable(f"KILT node at {self.url} stopped answering") from None
        self._runtime_checked = time.monotonic()

    def _drop(self, exc: BaseException) -> None:
        if self._substrate is not None:
            with contextlib.suppress(Exception):  # a broken socket may fail to close many ways
                self._substrate.close()
        self._substrate = None
        if self.observer is not None:
            self.observer.connected(False)
        self._backoff = min(max(self._backoff * 2, 0.25), self.max_backoff)
        self._retry_at = time.monotonic() + self._backoff
        log.warning("KILT node %s unavailable: %s (retry in %.2fs)", self.url, exc, self._backoff)

    def load_runtime(self) -> None:
        """Connect once, so the runtime metadata and its type registry are decoded into this
        process's memory, then close: called before gunicorn forks (no socket may cross a
        fork)."""
        with self.substrate():
            pass
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._substrate is not None:
                self._substrate.close()
            self._substrate = None

    # -- reads --------------------------------------------------------------------------------

    def _key(self, conn: SubstrateInterface, pallet: str, item: str, param: Any) -> StorageKey:
        """A storage key, from a plan kept per runtime version (an upgrade looks them up
        afresh in the new metadata)."""
        slot = (int(conn.runtime_version), pallet, item)
        plan = self._plans.get(slot)
        if plan is None:
            plan = StoragePlan.build(conn.metadata, pallet, item)
            if len(self._plans) > 64:  # plans of replaced runtimes
                self._plans.clear()
            self._plans[slot] = plan
        return plan.key(param, conn.metadata, conn.runtime_config)

    def _read(self, wanted: list[tuple[str, str, Any]]) -> list[Any]:
        """`_query`, its duration and result told to the observer."""
        started, result = time.perf_counter(), "error"
        try:
            values = self._query(wanted)
            result = "ok"
            return values
        except ChainUnavailable:
            result = "unavailable"
            raise
        finally:
            if self.observer is not None:
                self.observer.read(time.perf_counter() - started, result)

    def _query(self, wanted: list[tuple[str, str, Any]]) -> list[Any]:
        """Read several storage entries in one RPC; returns decoded values (None if absent)."""
        with self.substrate() as conn:
            keys = [self._key(conn, pallet, item, param) for pallet, item, param in wanted]
            hexes = [k.to_hex() for k in keys]
            try:
                response = conn.rpc_request("state_queryStorageAt", [hexes])
            except SubstrateRequestException as exc:
                raise ChainError(f"storage read failed: {exc}") from None
            changes: dict[str, str | None] = {}
            for group in response["result"]:
                for key_hex, data in group["changes"]:
                    changes[key_hex] = data
            version = int(conn.runtime_version)
            return [self._decoded(version, key, changes.get(key_hex))
                    for key, key_hex in zip(keys, hexes, strict=True)]

    def _decoded(self, version: int, key: StorageKey, data: str | None) -> Any:
        """A storage value decoded, or the same bytes' earlier decoding: the value is always
        read fresh from the node, only decoding it again (pure-Python SCALE, about a tenth of
        a login's CPU for a DID document) is skipped when a returning user's records did not
        change. Callers only read the decoded values. Called under the client's lock."""
        if data is None:
            return _decode(key, data)
        slot = (version, key.value_scale_type, data)
        value = self._decodings.get(slot)
        if value is None:
            value = _decode(key, data)
            if len(self._decodings) >= DECODED_KEPT:
                self._decodings.pop(next(iter(self._decodings)))  # the oldest
            self._decodings[slot] = value
        return value

    def decode(self, pallet: str, item: str, param: Any, data: str | None) -> Any:
        """Decode a raw storage value read elsewhere (e.g. a test vector) with our metadata."""
        with self.substrate() as conn:
            return _decode(self._key(conn, pallet, item, param), data)

    def did(self, did: FullDid | str) -> DidDocument | None:
        did = parse_full_did(did) if isinstance(did, str) else did
        (value,) = self._read([("Did", "Did", did.address)])
        return did_document_from_storage(did, value)

    def attestation(self, root_hash: str) -> Attestation | None:
        (value,) = self._read([("Attestation", "Attestations", root_hash)])
        return attestation_from_storage(root_hash, value)

    def web3name(self, did: FullDid | str) -> str | None:
        did = parse_full_did(did) if isinstance(did, str) else did
        (value,) = self._read([("Web3Names", "Names", did.address)])
        return web3name_from_storage(value)

    def web3name_owner(self, name: str) -> FullDid | None:
        (value,) = self._read([("Web3Names", "Owner", name)])
        if value is None or value.value is None:
            return None
        return full_did_from_account(address_to_account_id(value.value["owner"]))

    def ctype(self, ctype_hash: str) -> CType | None:
        (value,) = self._read([("Ctype", "Ctypes", ctype_hash)])
        if value is None or value.value is None:
            return None
        entry = value.value
        creator = full_did_from_account(address_to_account_id(entry["creator"]))
        return CType(ctype_hash, creator, int(entry["created_at"]))

    def login_records(self, did: FullDid, root_hashes: list[str],
                      known: DidDocument | None = None) -> LoginRecords:
        """DID document, web3name and attestations for one login, in one round trip.

        `known` is the DID's document when the caller read it already in this login.
        """
        reuse = known is not None and known.did == did
        wanted = [("Web3Names", "Names", did.address)]
        wanted += [("Attestation", "Attestations", h) for h in root_hashes]
        if not reuse:
            wanted.append(("Did", "Did", did.address))
        values = self._read(wanted)
        return LoginRecords(
            did=known if reuse else did_document_from_storage(did, values[-1]),
            web3name=web3name_from_storage(values[0]),
            attestations={
                h: attestation_from_storage(h, v)
                for h, v in zip(root_hashes, values[1:1 + len(root_hashes)], strict=True)
            },
        )

    def block_number(self) -> int:
        with self.substrate() as conn:
            header = conn.rpc_request("chain_getHeader", [])["result"]
            return int(header["number"], 16)

    def account_nonce(self, address: str) -> int:
        (value,) = self._read([("System", "Account", address)])
        return 0 if value is None or value.value is None else int(value.value["nonce"])

    def free_balance(self, address: str) -> int:
        (value,) = self._read([("System", "Account", address)])
        return 0 if value is None or value.value is None else int(value.value["data"]["free"])

    def health(self) -> None:
        """Raise `ChainUnavailable` unless the node answers now."""
        self.block_number()


def _decode(key: StorageKey, data: object) -> Any:
    """A storage value's SCALE bytes decoded; bytes that do not decode are the node's fault."""
    if data is None:
        return None
    try:
        return key.decode_scale_value(ScaleBytes(data))
    except Exception as exc:  # scalecodec raises many unrelated types for bad bytes
        raise ChainError(f"undecodable storage value: {type(exc).__name__}") from None


def _record(decoder: Callable[P, R]) -> Callable[P, R]:
    """Turn a decoded record of the wrong shape into a `ChainError` instead of a crash."""
    @functools.wraps(decoder)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return decoder(*args, **kwargs)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, KiltError) as exc:
            if isinstance(exc, ChainError):
                raise
            raise ChainError(f"malformed {decoder.__name__} record: {type(exc).__name__}"
                             ) from None
    return checked


@_record
def did_document_from_storage(did: FullDid, value: Any) -> DidDocument | None:
    if value is None or value.value is None:
        return None
    details = value.value
    keys: dict[bytes, DidKey] = {}
    for key_id_hex, entry in _pairs(details["public_keys"]):
        key_id = from_hex(key_id_hex, 32, "key id")
        keys[key_id] = _did_key(key_id, entry["key"])

    def lookup(key_id_hex: str | None) -> DidKey | None:
        return None if key_id_hex is None else keys.get(from_hex(key_id_hex, 32, "key id"))

    authentication = lookup(details["authentication_key"])
    if authentication is None:
        raise ChainError(f"DID {did} has no authentication key on chain")
    return DidDocument(
        did=did,
        authentication=authentication,
        key_agreement=tuple(
            k for k in (lookup(h) for h in details["key_agreement_keys"]) if k is not None
        ),
        assertion_method=lookup(details["attestation_key"]),
        capability_delegation=lookup(details["delegation_key"]),
        keys=keys,
        last_tx_counter=int(details["last_tx_counter"]),
    )


def _pairs(mapping: Any) -> list[tuple[str, Any]]:
    return list(mapping.items()) if isinstance(mapping, dict) else [tuple(p) for p in mapping]


def _did_key(key_id: bytes, key: dict[str, Any]) -> DidKey:
    (_kind, inner), = key.items()
    (key_type, public_hex), = inner.items()
    key_type = key_type.lower()
    if key_type == "account":
        key_type = "sr25519"  # an account key is an sr25519 public key in KILT's runtime
    if isinstance(public_hex, (bytes, bytearray)):
        public_hex = to_hex(bytes(public_hex))
    return DidKey(id=key_id, type=key_type, public_key=from_hex(public_hex, None, "public key"))


@_record
def attestation_from_storage(root_hash: str, value: Any) -> Attestation | None:
    if value is None or value.value is None:
        return None
    entry = value.value
    return Attestation(
        root_hash=root_hash,
        ctype_hash=entry["ctype_hash"],
        attester=full_did_from_account(address_to_account_id(entry["attester"])),
        revoked=bool(entry["revoked"]),
    )


@_record
def web3name_from_storage(value: Any) -> str | None:
    if value is None or value.value is None:
        return None
    name = value.value
    if isinstance(name, str) and name.startswith("0x"):
        return bytes.fromhex(name[2:]).decode("ascii", "replace")
    return str(name)

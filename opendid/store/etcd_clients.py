"""Client records from etcd, as the original OpenDID reads them: one key per client,
`/opendid/clients/<client_id>`, holding the same JSON as a config.yaml client.

One watcher thread per process keeps an in-memory copy: a range read of the prefix, then a
watch from the next revision. When etcd goes away the last records read keep serving, the
outage is logged once and shown by health, and the watcher reconnects with a bounded backoff;
on reconnecting it reads the whole prefix again, so deletes made meanwhile (or history that
etcd compacted away) are never missed. A bad record is logged and ignored.

etcd3gw (etcd's JSON gateway, /v3) does the connecting, TLS and requests. Its own `watch()`
runs the stream in a pool thread that swallows the stream's end and errors, and drops the
revision and the compaction notice, so a dead watch would go unnoticed: the watch stream is read
here, on the library's session and URLs, to see all of that.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from opendid.store.clients import ClientRecord

if TYPE_CHECKING:  # config imports this module (parse_endpoint)
    from opendid.config import EtcdConfig

log = logging.getLogger(__name__)

PREFIX = b"/opendid/clients/"
API_PATH = "/v3/"  # etcd >= 3.4's gateway (Debian bookworm: 3.4.23)
REQUEST_TIMEOUT = 5.0  # seconds, each request, connecting included
# The watch stream is idle between changes; etcd sends a progress notice at least every 10
# minutes (its default), so a stream silent for longer is dead (a half-open connection).
WATCH_READ_TIMEOUT = 11 * 60.0
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0
# An id is what follows the prefix: printable, no whitespace, no "/" (no nested keys).
CLIENT_ID = re.compile(r"[!-.0-~]{1,255}")


class RecordError(ValueError):
    """An etcd record that cannot be a client (the message says why; never the secret)."""


class WatchEnded(Exception):
    """The watch stream ended or etcd cancelled it (compaction, restart, error)."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str | None  # None: as the TLS settings say
    host: str
    port: int


def parse_endpoint(value: str) -> Endpoint:
    """`host:port` as the original lists them, `http://` or `https://` tolerated."""
    scheme = None
    rest = value
    for given in ("http", "https"):
        if value.startswith(given + "://"):
            scheme, rest = given, value[len(given) + 3:]
    parts = urlsplit("//" + rest.rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path or parts.query or parts.username:
        raise ValueError(f"etcd endpoint {value!r}: write host:port, e.g. 127.0.0.1:2379")
    return Endpoint(scheme, parts.hostname, port)


# -- records ------------------------------------------------------------------------------------


def client_id_of(key: bytes) -> str:
    if not key.startswith(PREFIX):
        raise RecordError(f"key {key!r} is outside {PREFIX.decode()}")
    try:
        client_id = key[len(PREFIX):].decode()
    except UnicodeDecodeError:
        raise RecordError(f"key {key!r}: the client id is not UTF-8") from None
    if not CLIENT_ID.fullmatch(client_id):
        raise RecordError(f"key {key!r}: a client id is 1-255 printable characters without "
                          "spaces or '/'")
    return client_id


def parse_record(client_id: str, value: bytes, production: bool) -> ClientRecord:
    """The original's JSON (`requirements`, `redirectUrls`, `clientSecret`, `checksDirectory`,
    and this project's per-client keys), checked as a config.yaml client is."""
    from opendid.config import ClientConfig, check_client, validation_problem, weak_client_secret

    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"client {client_id}: not JSON ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise RecordError(f"client {client_id}: the record must be a JSON object")
    try:
        client = ClientConfig.model_validate(raw)
    except ValidationError as exc:
        raise RecordError(f"client {client_id}: {validation_problem(exc)}") from None
    try:
        check_client(client, f"etcd client {client_id}: ", "", production)
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    if production and weak_client_secret(client.clientSecret):
        raise RecordError(f"client {client_id}: 'clientSecret' is a default or too short; "
                          "production: true refuses it")
    return client.record(client_id)


# -- connecting ---------------------------------------------------------------------------------


def _is_pem(value: str) -> bool:
    return "-----BEGIN" in value


@contextlib.contextmanager
def _files(*values: str) -> Iterator[list[str]]:
    """File paths as given, or (the original reads PEM text) the text in private files, there
    only while the context loads them."""
    with tempfile.TemporaryDirectory(prefix="opendid-etcd-") as folder:  # mode 0700
        paths = []
        for index, value in enumerate(values):
            if not _is_pem(value):
                paths.append(value)
                continue
            path = Path(folder) / f"{index}.pem"
            path.write_text(value)
            paths.append(str(path))
        yield paths


def tls_context(settings: EtcdConfig) -> ssl.SSLContext:
    """Built once (it reads the files): `caCert` to verify the server, the client pair."""
    ca = settings.caCert
    context = ssl.create_default_context(cadata=ca) if ca and _is_pem(ca) else \
        ssl.create_default_context(cafile=ca)
    if settings.clientCert and settings.clientKey:
        with _files(settings.clientCert, settings.clientKey) as (cert, key):
            context.load_cert_chain(cert, key)
    return context


class _TlsAdapter(HTTPAdapter):
    """Verifies the server certificate against `caCert` and, with `domainName`, checks that
    name (and sends it as SNI) instead of the endpoint's host."""

    def __init__(self, context: ssl.SSLContext, server_name: str | None) -> None:
        self.context, self.server_name = context, server_name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.context
        if self.server_name:
            kwargs["server_hostname"] = self.server_name
            kwargs["assert_hostname"] = self.server_name
        super().init_poolmanager(*args, **kwargs)


def etcd_session(settings: EtcdConfig, context: ssl.SSLContext | None = None) -> requests.Session:
    session = requests.Session()
    if settings.tls:
        session.mount("https://", _TlsAdapter(context or tls_context(settings),
                                              settings.domainName))
    return session


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _revision(response: dict[str, Any]) -> int:
    return int(response.get("header", {}).get("revision", 0))


@dataclass(frozen=True)
class EtcdHealth:
    connected: bool
    revision: int | None  # the last revision read; None: nothing read yet
    down_since: float | None  # epoch seconds
    clients: int
    endpoint: str | None
    failures: int = 0  # failed attempts since it went down

    def as_json(self) -> dict[str, Any]:
        """For the public health answer: not which etcd host (the log says that)."""
        shown: dict[str, Any] = {"status": "connected" if self.connected else "down",
                                 "revision": self.revision, "clients": self.clients}
        if self.down_since is not None:
            shown["downSince"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime(self.down_since))
            shown["failedAttempts"] = self.failures
        return shown


class EtcdClients:
    """The etcd records of this process, kept current by one watcher thread."""

    def __init__(self, settings: EtcdConfig, *, production: bool = False,
                 config_ids: frozenset[str] = frozenset(),
                 checks: Sequence[Callable[[ClientRecord], None]] = (),
                 backoff_max: float = BACKOFF_MAX) -> None:
        """`checks` run on every record read, after parsing (e.g. compiling its login policy
        once, when it arrives); one raising ValueError makes the record ignored, as a bad one."""
        self.settings = settings
        self.checks = tuple(checks)
        self.production = production
        self.config_ids = config_ids
        self.backoff_max = backoff_max
        self.endpoints = [parse_endpoint(e) for e in settings.endpoints]
        self._tls = tls_context(settings) if settings.tls else None
        self._records: dict[str, ClientRecord] = {}
        self._revision: int | None = None
        self._connected = False
        self._was_up = False  # connected once: a later success is a recovery
        self._down_since: float | None = time.time()
        self._endpoint: str | None = None
        self._failures = 0
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._first_try = threading.Event()
        self._stream: requests.Response | None = None
        self._lock = threading.Lock()

    # -- reading (request threads) --

    def get(self, client_id: str) -> ClientRecord | None:
        return self._records.get(client_id)

    def all(self) -> list[ClientRecord]:
        return list(self._records.values())

    def health(self) -> EtcdHealth:
        return EtcdHealth(self._connected, self._revision, self._down_since,
                          len(self._records), self._endpoint, self._failures)

    def read_once(self) -> None:
        """Read the records once, with no watcher (`opendid clients list`); WatchEnded, with
        the reason, when no endpoint answers."""
        client, _ = self._connect_and_load()
        client.session.close()

    # -- the watcher's life --

    def start(self, wait: float = REQUEST_TIMEOUT * 2) -> None:
        """Start this process's watcher (once per process: a thread does not survive a fork)
        and wait up to `wait` seconds for its first read, so that the first request sees the
        clients."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and \
                    self._pid == os.getpid():
                return
            self._stop = threading.Event()
            self._first_try = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name="etcd-clients", daemon=True)
            self._thread.start()
        self._first_try.wait(wait)

    def stop(self, wait: float = 5.0) -> None:
        """Stop the watcher (gunicorn's master, before forking: no thread may hold a lock
        across a fork)."""
        self._stop.set()
        self._close_stream()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(wait)

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is None:
            return
        try:  # a blocking read returns once the socket is shut down
            sock = socket.fromfd(stream.raw.fileno(), socket.AF_INET, socket.SOCK_STREAM)
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        except (OSError, ValueError, AttributeError):
            pass
        stream.close()

    def _run(self, stop: threading.Event) -> None:
        """Its own stop event: a later start() makes a new one for a new thread."""
        delay = BACKOFF_FIRST
        while not stop.is_set():
            try:
                client, revision = self._connect_and_load()
                delay = BACKOFF_FIRST
                self._first_try.set()
                self._watch(client, revision, stop)
            except (Etcd3Exception, requests.RequestException, WatchEnded, OSError,
                    ValueError) as exc:
                if stop.is_set():
                    break
                self._went_down(exc)
            except Exception as exc:  # an answer of a shape not foreseen: the thread lives on
                log.exception("etcd watcher: unexpected failure")
                self._went_down(exc)
            self._first_try.set()
            stop.wait(delay)
            delay = min(delay * 2, self.backoff_max)

    def _connect_and_load(self) -> tuple[Etcd3Client, int]:
        """The first endpoint, in the configured order, that authenticates and reads."""
        failure: Exception | None = None
        for endpoint in self.endpoints:
            scheme = endpoint.scheme or ("https" if self.settings.tls else "http")
            client = Etcd3Client(host=endpoint.host, port=endpoint.port, protocol=scheme,
                                 timeout=REQUEST_TIMEOUT, api_path=API_PATH,
                                 session=etcd_session(self.settings, self._tls))
            try:
                if self.settings.username is not None:
                    answer = client.post(client.get_url("/auth/authenticate"), json={
                        "name": self.settings.username, "password": self.settings.password})
                    client.session.headers["Authorization"] = str(answer["token"])
                answer = client.post(client.get_url("/kv/range"), json={
                    "key": _b64(PREFIX), "range_end": _b64(_prefix_end(PREFIX))})
            except (Etcd3Exception, requests.RequestException, KeyError, OSError) as exc:
                client.session.close()
                failure = exc
                continue
            return client, self._load(answer, f"{endpoint.host}:{endpoint.port}")
        raise WatchEnded(_describe(failure))

    def _load(self, answer: dict[str, Any], endpoint: str) -> int:
        """The whole prefix, read: the new records replace the old at once."""
        records: dict[str, ClientRecord] = {}
        for kv in answer.get("kvs", []):
            key = base64.b64decode(kv["key"])
            record = self._parse(key, base64.b64decode(kv.get("value", "")))
            if record is not None:
                records[record.client_id] = record
        revision = _revision(answer)
        self._records, self._revision, self._endpoint = records, revision, endpoint
        if self._was_up and not self._connected and self._down_since is not None:
            log.warning("etcd reachable again at %s after %.0f s: %d clients, revision %d "
                        "(pid %d)", endpoint, time.time() - self._down_since, len(records),
                        revision, os.getpid())
        elif not self._connected:
            log.info("etcd at %s: %d clients, revision %d (pid %d)", endpoint, len(records),
                     revision, os.getpid())
        self._connected, self._down_since, self._was_up, self._failures = True, None, True, 0
        return revision

    def _parse(self, key: bytes, value: bytes) -> ClientRecord | None:
        try:
            client_id = client_id_of(key)
            record = parse_record(client_id, value, self.production)
            for check in self.checks:
                check(record)
        except ValueError as exc:  # RecordError, or a check's refusal
            log.error("etcd record ignored: %s", exc)
            return None
        if client_id in self.config_ids:
            log.warning("etcd client %s ignored: config.yaml defines it, and config.yaml wins",
                        client_id)
        return record

    def _watch(self, client: Etcd3Client, revision: int, stop: threading.Event) -> None:
        request = {"create_request": {
            "key": _b64(PREFIX), "range_end": _b64(_prefix_end(PREFIX)),
            "start_revision": revision + 1, "progress_notify": True}}
        stream = client.session.post(client.get_url("/watch"), json=request, stream=True,
                                     timeout=(REQUEST_TIMEOUT, WATCH_READ_TIMEOUT))
        self._stream = stream
        try:
            if stream.status_code != 200:
                raise WatchEnded(f"watch refused: HTTP {stream.status_code}")
            for message in _messages(stream):
                self._apply(message)
                if stop.is_set():
                    return
        finally:
            self._stream = None
            stream.close()
        raise WatchEnded("the watch stream ended")

    def _apply(self, message: dict[str, Any]) -> None:
        if "error" in message:
            raise WatchEnded(f"watch error: {message['error'].get('message', '')}")
        result = message.get("result", {})
        if result.get("canceled"):
            raise WatchEnded(f"watch cancelled (compacted to {result.get('compact_revision')})"
                             if result.get("compact_revision") else "watch cancelled")
        events = result.get("events", [])
        if events:
            records = dict(self._records)
            for event in events:
                kv = event["kv"]
                key = base64.b64decode(kv["key"])
                if event.get("type") == "DELETE":
                    try:
                        client_id = client_id_of(key)
                    except RecordError:
                        continue
                    if records.pop(client_id, None) is not None:
                        log.info("etcd client %s deleted (revision %s, pid %d)", client_id,
                                 kv.get("mod_revision"), os.getpid())
                    continue
                record = self._parse(key, base64.b64decode(kv.get("value", "")))
                if record is not None:
                    records[record.client_id] = record
                    log.info("etcd client %s put (revision %s, pid %d)", record.client_id,
                             kv.get("mod_revision"), os.getpid())
                else:  # a put replaces the whole record: a bad one leaves no old one behind
                    records.pop(key[len(PREFIX):].decode(errors="replace"), None)
            self._records = records
        self._revision = max(self._revision or 0, _revision(result))

    def _went_down(self, exc: BaseException) -> None:
        if self._connected or not self._first_try.is_set():
            log.error("etcd unreachable (%s): keeping the %d clients last read; retrying every "
                      "%.0f s at most", _describe(exc), len(self._records), self.backoff_max)
        self._connected = False
        self._failures += 1
        if self._down_since is None:
            self._down_since = time.time()


def _messages(stream: requests.Response) -> Iterator[dict[str, Any]]:
    """The gateway's watch stream: one JSON object per line."""
    for line in stream.iter_lines():
        if line.strip():
            yield json.loads(line)


def _describe(exc: BaseException | None) -> str:
    """A short reason for the log (etcd3gw's messages carry the gateway's JSON)."""
    if exc is None:
        return "no endpoint"
    if isinstance(exc, Etcd3Exception) and exc.detail_text:
        try:
            return str(json.loads(exc.detail_text).get("message", exc.detail_text))[:200]
        except (ValueError, AttributeError):
            return str(exc.detail_text)[:200]
    return f"{exc.__class__.__name__}: {str(exc)[:200]}"


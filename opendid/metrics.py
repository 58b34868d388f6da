"""Prometheus metrics: the metric objects and the few `record_*` calls the rest of the code makes.

Framework-free (no Flask): the chain client reaches it only through `CHAIN`, an observer it is
handed. Every label takes values from a fixed set named here; anything else is counted as
"other", so no request can add a series. No label ever holds a DID, a token or a secret; a
client id only for clients from config.yaml (a short list the operator wrote), others are
"other".

Under gunicorn each worker writes its values to files in $PROMETHEUS_MULTIPROC_DIR, which
`metrics_files.prepare` sets in the master before prometheus_client is first imported (it reads
the variable once, at import); a scrape sums the files. Without it (dev server, tests) the
values live in this process's own registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
OTHER = "other"
NONE = "none"

SUCCESS, FAILURE = "success", "failure"
# Why a login step failed: set by the code that refuses it (`LoginError.reason`).
FAILURE_REASONS = frozenset({
    "bad_request",          # not a JSON object where one is expected
    "no_session",           # no login in this browser session (or the step comes too early)
    "wrong_flow",           # a DID-only login for a client that requires a credential
    "invalid_client",       # the login's client is gone
    "invalid_light_did",    # the wallet's light DID does not parse
    "bad_challenge",        # the session challenge does not decrypt or does not match
    "decryption",           # the credential message does not decrypt
    "bad_message",          # the decrypted message is not a submit-credential
    "credential_invalid",   # hashes, signatures, owner, sender ...
    "not_attested",         # no attestation on chain
    "revoked",              # the attestation is revoked
    "untrusted_attester",   # attested by someone the client does not trust
    "requirements_unmet",   # no presented credential meets the client's requirements
    "challenge_used",       # the credential challenge was used already (a replay)
    "jwt_invalid",          # DID-only login: token malformed, expired, wrong nonce ...
    "did_signature",        # DID-only login: signature or signer DID does not verify
    "jwt_replayed",         # DID-only login: the token was used already
    "policy",               # the client's login policy refused it
    "other_user",           # someone else than id_token_hint's user logged in
    "chain_unavailable",    # the KILT node is unreachable (503)
    "chain_error",          # the KILT node answered something unusable (503)
    "state_unavailable",    # the shared state store (Redis) is unreachable (503)
})
FLOWS = frozenset({"credential", "did", "sso"})
RESPONSE_TYPES = frozenset({"code", "id_token", "id_token token"})
TOKEN_KINDS = frozenset({"code", "id_token", "access", "refresh"})
GRANTS = frozenset({"authorize", "authorization_code", "refresh_token", "opendid_refresh"})
TOKEN_ENDPOINTS = frozenset({"token", "refresh"})
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant",
                          "unauthorized_client", "unsupported_grant_type", "invalid_scope",
                          "invalid_token"})
CHAIN_RESULTS = frozenset({"ok", "unavailable", "error"})

REGISTRY = CollectorRegistry()  # this process's values when not under gunicorn

LOGINS = Counter(
    "opendid_logins", "Login outcomes: success (by flow and response type) or failure (by "
    "reason); client is the client id for clients from config.yaml, else other",
    ["outcome", "reason", "flow", "response_type", "client"], registry=REGISTRY)
POLICY_REFUSALS = Counter(
    "opendid_policy_refusals", "Logins a client's login policy (checksDirectory) refused",
    ["client"], registry=REGISTRY)
VERIFICATION_SECONDS = Histogram(
    "opendid_credential_verification_seconds",
    "Time to verify a login's presented credentials (hashes, signatures, chain reads)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=REGISTRY)
CHAIN_READ_SECONDS = Histogram(
    "opendid_chain_read_seconds", "Time of one batched storage read from the KILT node, by "
    "result (ok, unavailable, error)", ["result"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY)
CHAIN_CONNECTED = Gauge(
    "opendid_chain_connected", "1 when every live worker is connected to the KILT node, else 0",
    multiprocess_mode="livemin", registry=REGISTRY)
TOKENS_ISSUED = Counter(
    "opendid_tokens_issued", "Codes and tokens issued, by kind (code, id_token, access, "
    "refresh) and grant (authorize: the login's own response)", ["kind", "grant"],
    registry=REGISTRY)
TOKEN_ERRORS_TOTAL = Counter(
    "opendid_token_errors", "Refused requests at the token endpoint (/api/v1/token) and at "
    "OpenDID's /api/v1/refresh, by OAuth error", ["endpoint", "error"], registry=REGISTRY)


def _bounded(value: str | None, allowed: frozenset[str], missing: str = NONE) -> str:
    if value is None or value == "":
        return missing
    return value if value in allowed else OTHER


def client_label(client_id: str | None, configured: bool) -> str:
    """The client id only for a client from config.yaml: any other source (CLI, admin page,
    etcd) can grow without bound."""
    if not client_id:
        return NONE
    return client_id if configured else OTHER


def record_login_success(flow: str, response_type: str | None, client: str) -> None:
    LOGINS.labels(SUCCESS, "ok", _bounded(flow, FLOWS),
                  _bounded(response_type, RESPONSE_TYPES), client).inc()


def record_login_failure(reason: str | None, flow: str, response_type: str | None,
                         client: str) -> str:
    """Count a refused login step; returns the reason label it was counted under."""
    label = _bounded(reason, FAILURE_REASONS, OTHER)
    LOGINS.labels(FAILURE, label, _bounded(flow, FLOWS), _bounded(response_type, RESPONSE_TYPES),
                  client).inc()
    if label == "policy":
        POLICY_REFUSALS.labels(client).inc()
    return label


@contextmanager
def timed_verification() -> Iterator[None]:
    """Observe how long the block takes (failed verifications included)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        VERIFICATION_SECONDS.observe(time.perf_counter() - started)


def record_tokens(kinds: Iterable[str], grant: str) -> None:
    grant_label = _bounded(grant, GRANTS, OTHER)
    for kind in kinds:
        TOKENS_ISSUED.labels(_bounded(kind, TOKEN_KINDS, OTHER), grant_label).inc()


def record_token_error(endpoint: str, error: str | None) -> None:
    TOKEN_ERRORS_TOTAL.labels(_bounded(endpoint, TOKEN_ENDPOINTS, OTHER),
                              _bounded(error, TOKEN_ERRORS, OTHER)).inc()


class ChainMetrics:
    """The chain client's observer (`kilt.chain.ChainObserver`): read latency and connection
    state, without the chain client knowing about Prometheus."""

    def read(self, seconds: float, result: str) -> None:
        CHAIN_READ_SECONDS.labels(_bounded(result, CHAIN_RESULTS, OTHER)).observe(seconds)

    def connected(self, up: bool) -> None:
        CHAIN_CONNECTED.set(1 if up else 0)


CHAIN = ChainMetrics()


def exposition() -> tuple[bytes, str]:
    """The current values in Prometheus' text format, and its content type: under gunicorn
    summed over every worker's files, else this process's registry."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

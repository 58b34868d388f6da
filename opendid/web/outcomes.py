"""One log line and one count per login outcome: a refused login step, or a finished login.

The line names the request id, the client id, the outcome, the reason and the flow. It never
holds the error's message (it may quote a DID), a token, a code or a light-DID URI: only words
from fixed sets, and a client id that was checked against the client store when the login
began. Token issuance and token endpoint errors are counted here too, from the responses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from flask import Response, request

from opendid import metrics
from opendid.oidc.authorize import AuthRequest
from opendid.oidc.results import AuthResponse
from opendid.store.clients import ClientRecord
from opendid.web import request_id
from opendid.web.context import login_or_none, services

log = logging.getLogger("opendid.login.outcome")

# The login steps, and the flow each belongs to: a LoginError elsewhere is no login outcome.
FLOWS = {
    "api.get_challenge": "credential",
    "api.post_challenge": "credential",
    "api.get_credentials": "credential",
    "api.post_credentials": "credential",
    "api.did_login": "did",
}
# Response parameters and token endpoint fields -> the kind of token issued
TOKEN_FIELDS = {"code": "code", "id_token": "id_token", "access_token": "access",
                "accessToken": "access", "refresh_token": "refresh", "refreshToken": "refresh"}
PRINTABLE = re.compile(r"[\x21-\x7e]{1,200}")


def is_login_step() -> bool:
    return request.endpoint in FLOWS


def _flow() -> str:
    return FLOWS.get(request.endpoint or "", metrics.OTHER)


def _shown(client_id: str | None) -> str:
    """A client id for the log line: printable, no spaces, bounded (ids from the admin page or
    etcd are the operator's, but a log line must stay one line)."""
    if not client_id:
        return "-"
    return client_id if PRINTABLE.fullmatch(client_id) else "[unprintable]"


def _client_label(client_id: str | None) -> str:
    """config.yaml's clients are upserted at start and win over every other source, so the
    config names them without a store query on the login path."""
    configured = bool(client_id) and client_id in services().config.clients
    return metrics.client_label(client_id, configured)


def login_failed(reason: str | None, status: int) -> None:
    """A login step refused (a LoginError, or the chain unreachable during a step)."""
    login = login_or_none()
    auth: Any = login.get("request") if login else None
    client_id = auth.get("client_id") if isinstance(auth, dict) else None
    response_type = auth.get("response_type") if isinstance(auth, dict) else None
    client_id = client_id if isinstance(client_id, str) else None
    response_type = response_type if isinstance(response_type, str) else None
    label = metrics.record_login_failure(reason, _flow(), response_type,
                                         _client_label(client_id))
    log.info("login outcome=failure reason=%s flow=%s client=%s status=%d request_id=%s",
             label, _flow(), _shown(client_id), status, request_id.current())


def login_refused(auth: AuthRequest, client: ClientRecord, reason: str, flow: str) -> None:
    """A verified login that still gets an error response (e.g. not id_token_hint's user)."""
    label = metrics.record_login_failure(reason, flow, auth.response_type,
                                         _client_label(client.client_id))
    log.info("login outcome=failure reason=%s flow=%s client=%s status=%d request_id=%s",
             label, flow, _shown(client.client_id), 200, request_id.current())


def login_succeeded(auth: AuthRequest, client: ClientRecord, result: AuthResponse,
                    flow: str | None = None) -> None:
    """A finished login: the client gets its code or tokens (`result`)."""
    flow = flow or _flow()
    metrics.record_login_success(flow, auth.response_type, _client_label(client.client_id))
    metrics.record_tokens(_kinds(result.params), "authorize")
    log.info("login outcome=success reason=ok flow=%s client=%s response_type=%s "
             "request_id=%s", flow, _shown(client.client_id),
             auth.response_type.replace(" ", "+"), request_id.current())


def _kinds(fields: Mapping[str, Any]) -> list[str]:
    return [kind for name, kind in TOKEN_FIELDS.items() if fields.get(name)]


def token_response(endpoint: str, grant: str | None, response: Response) -> None:
    """Count what a token endpoint answered: the tokens it issued, or its error."""
    body = response.get_json(silent=True) if response.is_json else None
    body = body if isinstance(body, dict) else {}
    if response.status_code == 200:
        metrics.record_tokens(_kinds(body), grant or metrics.OTHER)
    else:
        error = body.get("error")
        metrics.record_token_error(endpoint, error if isinstance(error, str) else
                                   "invalid_token" if endpoint == "refresh" else None)

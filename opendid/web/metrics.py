"""`GET /metrics`: Prometheus' text format, off unless the config's `metrics` key is present,
and then only for a scraper that passes every check it names: a client address in `allowFrom`
(the direct peer: `X-Forwarded-For` is never believed) and `Authorization: Bearer <token>`.
A refused scrape gets 401/403 and not one value."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import Blueprint, Response, abort, request

from opendid import metrics
from opendid.config import MetricsConfig
from opendid.web.bearer import HEADER as BEARER
from opendid.web.context import services

bp = Blueprint("metrics", __name__)


def peer_allowed(address: str | None, networks: list[str]) -> bool:
    """Is the connection's address in one of the networks (an IPv4-mapped IPv6 address counts
    as its IPv4 address)?"""
    try:
        peer = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in ipaddress.ip_network(net, strict=False) for net in networks)


def token_matches(header: str | None, token: str) -> bool:
    """`Bearer <token>` (scheme in any case, one space), compared in constant time (digests:
    equal lengths, so not even the token's length leaks)."""
    matched = BEARER.fullmatch(header or "")
    given = matched.group(1) if matched else ""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                               hashlib.sha256(token.encode()).digest()) and matched is not None


def refusal(settings: MetricsConfig) -> Response | None:
    if settings.allowFrom and not peer_allowed(request.remote_addr, settings.allowFrom):
        return Response("403 Forbidden: this address may not read the metrics", status=403,
                        mimetype="text/plain")
    if settings.token is not None and not token_matches(request.headers.get("Authorization"),
                                                        settings.token):
        return Response("401 Unauthorized: send the metrics token as a bearer token",
                        status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return None


@bp.get("/metrics")
def scrape() -> Response:
    settings = services().config.metrics
    if settings is None:
        abort(404)
    refused = refusal(settings)
    if refused is not None:
        return refused
    body, content_type = metrics.exposition()
    return Response(body, status=200, headers={"Content-Type": content_type,
                                               "Cache-Control": "no-store"})

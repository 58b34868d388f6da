"""CORS for browser clients (single-page apps): discovery and JWKS from any origin; the token,
userinfo and revocation endpoints from the origins of registered redirect URIs only.

A few lines rather than flask-cors: the allowed origins come from the client store, which
`opendid clients add` changes while the service runs, and flask-cors takes a fixed list at
start-up. Origins are compared exactly as browsers serialise them (RFC 6454: lower-case scheme
and host, no default port); `null` and anything else get no CORS headers, and their preflight a
403. No endpoint here reads cookies, so credentials are never allowed. Introspection is not
offered: it needs a client secret, which no browser app holds.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

from opendid.web.context import services

ANY_ORIGIN = frozenset({"wellknown.openid_configuration", "wellknown.jwks"})
CLIENT_ORIGINS = frozenset({"api.token", "api.userinfo", "tokens.revoke"})
ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = "WWW-Authenticate"  # userinfo's error, which an app must be able to read
PREFLIGHT_MAX_AGE = "600"
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL as a browser sends it; None for other URLs (a native
    app's custom scheme has no web origin)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def registered_origins() -> set[str]:
    """Origins of every registered client's redirect URIs, read now (clients change)."""
    origins = set()
    for client in services().clients.all():
        for url in client.redirect_urls:
            origin = origin_of(url)
            if origin is not None:
                origins.add(origin)
    return origins


def _allowed(origin: str) -> str | None:
    """The `Access-Control-Allow-Origin` value for this request, or None."""
    if request.endpoint in ANY_ORIGIN:
        return "*"
    if request.endpoint in CLIENT_ORIGINS and origin in registered_origins():
        return origin
    return None


def _is_preflight() -> bool:
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


def init_cors(app: Flask) -> None:
    @app.before_request
    def preflight() -> Response | None:
        if not _is_preflight() or request.endpoint not in ANY_ORIGIN | CLIENT_ORIGINS:
            return None
        allowed = _allowed(request.headers["Origin"])
        if allowed is None:
            return Response("Origin not allowed", status=403, mimetype="text/plain")
        response = Response(status=204)
        response.headers["Access-Control-Allow-Origin"] = allowed
        methods = request.url_rule.methods if request.url_rule else None
        response.headers["Access-Control-Allow-Methods"] = ", ".join(
            sorted(m for m in methods or () if m not in ("HEAD", "OPTIONS")))
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        if allowed != "*":
            response.vary.add("Origin")
        return response

    @app.after_request
    def allow_origin(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin is None or _is_preflight() or request.endpoint not in (
                ANY_ORIGIN | CLIENT_ORIGINS):
            return response
        allowed = _allowed(origin)
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.endpoint in CLIENT_ORIGINS:
            response.vary.add("Origin")  # the answer differs by origin: caches must know
        return response

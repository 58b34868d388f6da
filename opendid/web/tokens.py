"""Token management for clients: revocation (RFC 7009) and introspection (RFC 7662), answered
by the authlib endpoints in `opendid.oidc.revocation`."""

from __future__ import annotations

from flask import Blueprint, Response

from opendid.web.context import services

bp = Blueprint("tokens", __name__, url_prefix="/api/v1")


@bp.post("/revoke")
def revoke() -> Response:
    return services().token_endpoint.server.create_endpoint_response("revocation")


@bp.post("/introspect")
def introspect() -> Response:
    return services().token_endpoint.server.create_endpoint_response("introspection")

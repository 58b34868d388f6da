"""`/.well-known`: OIDC discovery, JWKS and the DID configuration (domain linkage)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from opendid.oidc.authorize import RESPONSE_MODES
from opendid.oidc.claims import CREDENTIAL_CLAIM, SUPPORTED_SCOPES, supported_claims
from opendid.oidc.keys import JWKS_ALGORITHMS
from opendid.oidc.revocation import INTROSPECTION_AUTH_METHODS, REVOCATION_AUTH_METHODS
from opendid.store.clients import RESPONSE_TYPES
from opendid.web.context import services

bp = Blueprint("wellknown", __name__, url_prefix="/.well-known")


@bp.get("/openid-configuration")
def openid_configuration() -> Response:
    config = services().config
    issuer = config.oidc_issuer
    return jsonify({
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/api/v1/authorize",
        "token_endpoint": f"{issuer}/api/v1/token",
        "userinfo_endpoint": f"{issuer}/api/v1/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "end_session_endpoint": f"{issuer}/api/v1/logout",
        "response_types_supported": list(RESPONSE_TYPES),
        # query for the code flow, fragment and form_post for every response type
        "response_modes_supported": list(RESPONSE_MODES),
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token"],
        "subject_types_supported": ["public"],
        # what standard clients' tokens use, verifiable through jwks_uri; OpenDID-style tokens
        # (the server-wide jwt key) are not for relying parties that discover.
        "id_token_signing_alg_values_supported": list(JWKS_ALGORITHMS),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        # RFC 7009 / RFC 7662 (RFC 8414 §2): revocation authenticates as /token does;
        # introspection is for confidential clients only
        "revocation_endpoint": f"{issuer}/api/v1/revoke",
        "revocation_endpoint_auth_methods_supported": list(REVOCATION_AUTH_METHODS),
        "introspection_endpoint": f"{issuer}/api/v1/introspect",
        "introspection_endpoint_auth_methods_supported": list(INTROSPECTION_AUTH_METHODS),
        "scopes_supported": list(SUPPORTED_SCOPES),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "w3n",
                             "pro", *supported_claims(), CREDENTIAL_CLAIM],
    })


@bp.get("/jwks.json")
def jwks() -> Response:
    return jsonify(services().keyring.public_jwks())


@bp.get("/did-configuration.json")
def did_configuration() -> Response:
    return jsonify(services().did_configuration())

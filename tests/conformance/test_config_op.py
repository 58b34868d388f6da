"""Config OP: `oidcc-discovery-endpoint-verification`, plus the discovery entries issue 7 adds
(logout, revocation, introspection, RFC 9207, scopes and claims)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

from tests.conformance.conftest import DISCOVERY_PATH, OP, TIMEOUT

# RFC 6749 A.4 scope-token: %x21 / %x23-5B / %x5D-7E
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def _absolute(url: object) -> bool:
    parts = urlsplit(str(url))
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def _has_all(listed: list[str], wanted: list[str], as_sets: bool = False) -> bool:
    """AbstractValidateJsonArray; response types compare as sets of words."""
    def same(a: str, b: str) -> bool:
        return set(a.split()) == set(b.split()) if as_sets else a == b
    return all(any(same(w, have) for have in listed) for w in wanted)


def test_oidcc_discovery_endpoint_verification(op: OP) -> None:
    response = requests.get(op.discovery_url, timeout=TIMEOUT)
    assert response.status_code == 200  # EnsureDiscoveryEndpointResponseStatusCodeIs200
    assert response.headers["Content-Type"].startswith("application/json")
    doc = response.json()
    # OIDCCCheckDiscEndpointResponseTypesSupported (static client): all three, any word order
    assert _has_all(doc["response_types_supported"], ["code", "id_token", "token id_token"],
                    as_sets=True)
    # CheckDiscEndpointIssuer(IsValidUrl): the discovery URL is the issuer's
    assert doc["issuer"].rstrip("/") == op.discovery_url.removesuffix(DISCOVERY_PATH)
    assert _absolute(doc["issuer"]) and not urlsplit(doc["issuer"]).query
    assert {"public", "pairwise"} & set(doc["subject_types_supported"])
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert _absolute(doc[name]), name
    assert "registration_endpoint" not in doc or _absolute(doc["registration_endpoint"])
    # FetchServerKeys, ValidateServerJWKs, EnsureServerJwksDoesNotContainPrivateOrSymmetricKeys,
    # CheckForKeyIdInServerJWKs
    jwks = requests.get(doc["jwks_uri"], timeout=TIMEOUT)
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] in ("RSA", "EC", "OKP") and key.get("kid")
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
    assert len({k["kid"] for k in keys}) == len(keys)
    # informational entries are booleans when present
    for flag in ("request_parameter_supported", "request_uri_parameter_supported",
                 "claims_parameter_supported"):
        assert isinstance(doc.get(flag, False), bool), flag
    assert isinstance(doc["claims_supported"], list)  # OIDCCCheckDiscEndpointClaimsSupported
    assert _has_all(doc["grant_types_supported"], ["authorization_code", "implicit"])
    assert "openid" in doc["scopes_supported"]  # CheckDiscEndpointScopesSupportedContainsOpenId
    assert all(SCOPE_TOKEN.match(s) for s in doc["scopes_supported"])
    for name in ("ui_locales_supported", "claims_locales_supported"):
        assert isinstance(doc.get(name, []), list)
    assert isinstance(doc["code_challenge_methods_supported"], list)


def test_discovery_lists_the_issue_7_features(op: OP) -> None:
    """What standard relying parties look for beyond the Config OP module (issue 7)."""
    doc = op.config
    for name in ("end_session_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert _absolute(doc.get(name)) and doc[name].startswith(op.issuer), name
    assert doc.get("authorization_response_iss_parameter_supported") is True  # RFC 9207
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False
    assert sorted(doc["response_modes_supported"]) == ["form_post", "fragment", "query"]
    assert {"openid", "email", "profile"} <= set(doc["scopes_supported"])
    assert {"email", "email_verified", "preferred_username"} <= set(doc["claims_supported"])

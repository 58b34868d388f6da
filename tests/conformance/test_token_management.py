"""Beyond the OIDF OP plans (they have no module for these): revocation (RFC 7009) and
introspection (RFC 7662) as authlib's client does them, endpoints from discovery."""

from __future__ import annotations

import time

import pytest
from authlib.integrations.base_client import OAuthError

from tests.conformance.conftest import CODE, OP, RP, Browser, run


def test_rfc7009_revoking_an_access_token(browser: Browser, rp: RP, op: OP) -> None:
    flow = run(browser, rp, CODE)
    answer = rp.oauth.revoke_token(op.endpoint("revocation_endpoint"), flow.access_token,
                                   token_type_hint="access_token")
    assert answer.status_code == 200
    assert rp.userinfo(str(flow.access_token)).status_code == 401


def test_rfc7009_revoking_a_refresh_token_ends_its_grant(browser: Browser, rp: RP,
                                                         op: OP) -> None:
    flow = run(browser, rp, CODE)
    answer = rp.oauth.revoke_token(op.endpoint("revocation_endpoint"),
                                   flow.tokens["refresh_token"], token_type_hint="refresh_token")
    assert answer.status_code == 200
    with pytest.raises(OAuthError) as refused:
        rp.refresh(flow.tokens["refresh_token"])
    assert refused.value.error == "invalid_grant"
    assert rp.userinfo(str(flow.access_token)).status_code == 401


def test_rfc7009_another_clients_token_is_not_revoked(browser: Browser, rp: RP, op: OP) -> None:
    """RFC 7009 §2.1: the server checks the token was issued to the client asking."""
    flow = run(browser, rp, CODE)
    other = RP(op, client_id="es-client")
    other.oauth.revoke_token(op.endpoint("revocation_endpoint"), flow.access_token)
    assert rp.userinfo(str(flow.access_token)).status_code == 200


def test_rfc7662_introspection(browser: Browser, rp: RP, op: OP) -> None:
    flow = run(browser, rp, CODE)
    url = op.endpoint("introspection_endpoint")
    answer = rp.oauth.introspect_token(url, flow.access_token, token_type_hint="access_token")
    assert answer.status_code == 200
    info = answer.json()
    assert info["active"] is True
    assert info["sub"] == flow.claims["sub"] and info["client_id"] == rp.client_id
    assert info["exp"] > time.time() and "openid" in info["scope"].split()
    rp.oauth.revoke_token(op.endpoint("revocation_endpoint"), flow.access_token)
    after = rp.oauth.introspect_token(url, flow.access_token).json()
    assert after == {"active": False}
    unknown = rp.oauth.introspect_token(url, "not-a-token").json()
    assert unknown == {"active": False}


def test_rfc7662_introspection_needs_client_authentication(browser: Browser, rp: RP,
                                                           op: OP) -> None:
    flow = run(browser, rp, CODE)
    stranger = RP(op, secret="wrong-secret")
    answer = stranger.oauth.introspect_token(op.endpoint("introspection_endpoint"),
                                             flow.access_token)
    assert answer.status_code == 401

"""Basic OP / Implicit OP / Form Post OP: the flows themselves, client authentication, nonce,
PKCE, userinfo, code reuse, refresh tokens, and requests that must fail."""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.base_client import OAuthError

from conftest import STANDARD_REDIRECT
from tests.conformance.conftest import (
    ALL,
    BASIC,
    CODE,
    FORM_POST,
    IMPLICIT,
    OP,
    RP,
    TIMEOUT,
    VSCHAR,
    Browser,
    Variant,
    complete,
    jwt_header,
    run,
    variants,
)

WITH_ACCESS_TOKEN = [v for v in ALL if v.token or v.code]


@variants(*ALL)
def test_oidcc_server(browser: Browser, rp: RP, variant: Variant) -> None:
    """The happy flow: callback, ID token (signature through the kid, iss, aud, exp, iat,
    nonce, sub; at_hash with an access token), code exchange, userinfo."""
    flow = run(browser, rp, variant)
    assert flow.response.wallet  # a fresh browser: the user logged in
    assert "name" not in flow.claims  # EnsureIdTokenDoesNotContainName (a warning)
    if variant.code:
        assert flow.tokens["refresh_token"]  # CheckForRefreshTokenValue (informational)


@variants(CODE, FORM_POST[0])
def test_oidcc_server_client_secret_post(browser: Browser, op: OP, variant: Variant) -> None:
    run(browser, RP(op, auth_method="client_secret_post"), variant)


@variants(*ALL)
def test_oidcc_idtoken_signature(browser: Browser, rp: RP, variant: Variant) -> None:
    """EnsureIdTokenContainsKid, EnsureIdTokenSignatureIsRS256 (the client asked for no other
    algorithm than the default)."""
    flow = run(browser, rp, variant)
    header = jwt_header(flow.id_token)
    assert header["alg"] == "RS256" and header["kid"]


@variants(*WITH_ACCESS_TOKEN)
def test_oidcc_userinfo_get(browser: Browser, rp: RP, variant: Variant) -> None:
    flow = run(browser, rp, variant)
    response = rp.userinfo(str(flow.access_token), "get")
    assert response.status_code == 200
    assert response.json()["sub"] == flow.claims["sub"]  # EnsureUserInfoContainsSub


@variants(*WITH_ACCESS_TOKEN)
def test_oidcc_userinfo_post_header(browser: Browser, rp: RP, variant: Variant) -> None:
    flow = run(browser, rp, variant)
    response = rp.userinfo(str(flow.access_token), "post-header")
    assert response.status_code == 200
    assert response.json()["sub"] == flow.claims["sub"]


@variants(*WITH_ACCESS_TOKEN)
def test_oidcc_userinfo_post_body(browser: Browser, rp: RP, variant: Variant) -> None:
    """The access token in a form body (RFC 6750 §2.2): only a warning in the module when
    refused; issue 7 makes it supported."""
    flow = run(browser, rp, variant)
    response = rp.userinfo(str(flow.access_token), "post-body")
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == flow.claims["sub"]


def test_userinfo_refuses_a_bad_token_in_a_form_body(rp: RP) -> None:
    """Beyond the module: RFC 6750 §3.1 errors for the form-body spelling too."""
    response = rp.userinfo("not-a-token", "post-body")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers.get("WWW-Authenticate", "")


@variants(CODE, FORM_POST[0])
def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
        browser: Browser, rp: RP, variant: Variant) -> None:
    request = rp.request(variant, nonce=False)
    assert "nonce=" not in request.url
    response = browser.authorize(request.url, rp.redirect_uri)
    rp.check_success(request, response)
    assert "code" in response.params


@variants(*IMPLICIT, *FORM_POST[1:])
def test_oidcc_ensure_request_without_nonce_fails(browser: Browser, rp: RP,
                                                  variant: Variant) -> None:
    """OIDC Core §3.2.2.1: nonce is required for implicit flows; invalid_request at the
    redirect URI (the module also accepts an error page)."""
    request = rp.request(variant, nonce=False)
    response = browser.go(request.url)
    answer = browser.outcome(response, rp.redirect_uri, wallet=False)
    assert rp.check_error(request, answer) == "invalid_request"


@pytest.mark.parametrize("mode", [None, "form_post"], ids=["default", "form_post"])
def test_oidcc_response_type_missing(browser: Browser, rp: RP, mode: str | None) -> None:
    """No response_type: an error page, or invalid_request / unsupported_response_type at the
    redirect URI (in the query: nothing says fragment)."""
    request = rp.request(CODE, **({"response_mode": mode} if mode else {}))
    url = request.url.replace("response_type=code&", "").replace("&response_type=code", "")
    assert "response_type" not in url
    response = browser.go(url)
    if response.status_code == 400:
        assert "response_type" in response.text
        return
    answer = browser.outcome(response, rp.redirect_uri, wallet=False)
    assert answer.mode == (mode or "query")
    assert answer.get("state") == request.state
    rp.check_iss(answer)
    assert answer["error"] in ("invalid_request", "unsupported_response_type")
    assert "code" not in answer.params


@variants(*ALL)
def test_oidcc_ensure_registered_redirect_uri(browser: Browser, rp: RP, op: OP,
                                              variant: Variant) -> None:
    """An unregistered redirect URI: an error page, never a redirect to it (RFC 6749
    §4.1.2.1)."""
    bad = STANDARD_REDIRECT + "/not-registered"
    request = RP(op, redirect_uri=bad).request(variant)
    response = browser.go(request.url)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.text


@variants(*BASIC, FORM_POST[0])
def test_oidcc_ensure_post_request_succeeds(browser: Browser, rp: RP, variant: Variant) -> None:
    """The authorization request by POST with a form body (OIDC Core §3.1.2.1)."""
    flow = run(browser, rp, variant, post=True)
    assert flow.response.wallet


@variants(CODE, FORM_POST[0])
def test_oidcc_ensure_request_with_valid_pkce_succeeds(browser: Browser, rp: RP,
                                                       variant: Variant) -> None:
    request = rp.request(variant, pkce=True)
    assert "code_challenge_method=S256" in request.url
    complete(rp, request, browser.authorize(request.url, rp.redirect_uri))


def _reuse(rp: RP, code: str) -> requests.Response:
    """The code at the token endpoint again: 400, JSON, invalid_grant, a clean description
    (AbstractOIDCCAuthCodeReuse.checkResponse)."""
    with pytest.raises(OAuthError) as refused:
        rp.exchange(code)
    assert refused.value.error == "invalid_grant"
    answer = rp.token_responses[-1]
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert set(body) <= {"error", "error_description", "error_uri"}
    assert VSCHAR.match(body.get("error_description", " "))
    assert "\n" not in body.get("error_description", "")
    return answer


@variants(CODE, FORM_POST[0])
def test_oidcc_codereuse(browser: Browser, rp: RP, variant: Variant) -> None:
    flow = run(browser, rp, variant)
    _reuse(rp, flow.response["code"])


@variants(CODE, FORM_POST[0])
def test_oidcc_codereuse_30seconds(browser: Browser, rp: RP, variant: Variant) -> None:
    """The module waits 30 s before the second use; the outcome here does not depend on the
    wait (a redeemed code is a stored state, and 30 s is within the code's 60 s lifetime), so
    the test reuses at once. The access token from the first use must stop working."""
    flow = run(browser, rp, variant)
    _reuse(rp, flow.response["code"])
    response = rp.userinfo(str(flow.access_token))
    assert response.status_code == 401  # CallProtectedResourceWithBearerTokenExpectingError


@variants(CODE, FORM_POST[0])
def test_oidcc_refresh_token(browser: Browser, rp: RP, op: OP, variant: Variant) -> None:
    """Refresh with client 1 (client_secret_basic, scope sent), then with client 2; client 2's
    refresh token presented by client 1 is invalid_grant."""
    flows = {}
    for client in (rp, RP(op, client_id="es-client")):
        flow = run(browser, client, variant)
        refresh_token = flow.tokens["refresh_token"]
        assert VSCHAR.match(refresh_token)  # EnsureRefreshTokenContainsAllowedCharactersOnly
        assert len(refresh_token) >= 22  # EnsureMinimumRefreshTokenLength
        refreshed = client.refresh(refresh_token)
        answer = client.token_responses[-1]
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        assert "no-store" in answer.headers.get("Cache-Control", "")  # CheckTokenEndpointCache..
        assert refreshed["token_type"].lower() == "bearer"
        assert VSCHAR.match(refreshed["access_token"])
        assert refreshed["access_token"] != flow.tokens["access_token"]
        if "id_token" in refreshed:  # CompareIdTokenClaims (OIDC Core §12.2)
            claims = client.id_token_claims(refreshed["id_token"], None)
            for name in ("iss", "sub", "aud", "auth_time", "azp"):
                assert claims.get(name) == flow.claims.get(name), name
        assert client.userinfo(refreshed["access_token"]).status_code == 200
        flows[client.client_id] = refreshed
    with pytest.raises(OAuthError) as refused:  # RefreshTokenRequestExpectingErrorSteps
        rp.refresh(flows["es-client"]["refresh_token"])
    assert refused.value.error == "invalid_grant"
    answer = rp.token_responses[-1]
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("application/json")


def test_response_type_order_does_not_matter(browser: Browser, rp: RP) -> None:
    """Beyond the modules: `token id_token` is the same response type as `id_token token`
    (OAuth 2.0 Multiple Response Types §3; the Config OP check compares them as sets)."""
    flow = run(browser, rp, Variant("token id_token"))
    assert flow.response.mode == "fragment"
    assert flow.access_token and flow.claims["at_hash"]


def test_userinfo_rejects_requests_without_a_token(op: OP) -> None:
    """Beyond the modules: userinfo without any access token is a 401 with a Bearer
    challenge (RFC 6750 §3)."""
    response = requests.get(op.endpoint("userinfo_endpoint"), timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")

"""Basic OP / Implicit OP / Form Post OP: authorization parameters that must be accepted or
cleanly refused, request objects, claims requests and scopes."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

from tests.conformance.conftest import (
    ALL,
    OP,
    RP,
    Browser,
    Flow,
    Variant,
    run,
    variants,
)

# OIDC Core §5.1: the JSON types of the standard claims (ValidateUserInfoStandardClaims)
STRING_CLAIMS = {"sub", "name", "given_name", "family_name", "middle_name", "nickname",
                 "preferred_username", "profile", "picture", "website", "email", "gender",
                 "birthdate", "zoneinfo", "locale", "phone_number"}
BOOLEAN_CLAIMS = {"email_verified", "phone_number_verified"}
# the provisioned credential's Email property (root conftest.py)
EMAIL = "some@example.org"
# AbstractVerifyScopesReturnedInClaims
SCOPE_CLAIMS = {"openid": {"sub"}, "email": {"email", "email_verified"},
                "profile": {"preferred_username"}}


def _unsigned(claims: dict[str, Any]) -> str:
    """A request object with alg none (SerializeRequestObjectWithNullAlgorithm)."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part(claims)}."


def _accepted(browser: Browser, rp: RP, variant: Variant, **extra: str) -> Flow:
    """The parameter must not cause an error: the whole normal flow succeeds."""
    flow = run(browser, rp, variant, **extra)
    assert flow.response.wallet
    return flow


@variants(*ALL)
def test_oidcc_display_page(browser: Browser, rp: RP, variant: Variant) -> None:
    _accepted(browser, rp, variant, display="page")


@variants(*ALL)
def test_oidcc_display_popup(browser: Browser, rp: RP, variant: Variant) -> None:
    _accepted(browser, rp, variant, display="popup")


@variants(*ALL)
def test_oidcc_login_hint(browser: Browser, rp: RP, op: OP, variant: Variant) -> None:
    _accepted(browser, rp, variant, login_hint=f"buffy@{urlsplit(op.issuer).hostname}")


@variants(*ALL)
def test_oidcc_ui_locales(browser: Browser, rp: RP, variant: Variant) -> None:
    _accepted(browser, rp, variant, ui_locales="se")


@variants(*ALL)
def test_oidcc_claims_locales(browser: Browser, rp: RP, variant: Variant) -> None:
    _accepted(browser, rp, variant, claims_locales="se")


@variants(*ALL)
def test_oidcc_ensure_request_with_acr_values_succeeds(browser: Browser, rp: RP, op: OP,
                                                       variant: Variant) -> None:
    """acr_values from acr_values_supported, else `1 2`; an `acr` in the ID token must be
    one of them (no acr is only a warning)."""
    wanted = op.config.get("acr_values_supported") or ["1", "2"]
    flow = _accepted(browser, rp, variant, acr_values=" ".join(wanted))
    if "acr" in flow.claims:
        assert flow.claims["acr"] in wanted


@variants(*ALL)
def test_oidcc_ensure_request_with_unknown_parameter_succeeds(browser: Browser, rp: RP,
                                                             variant: Variant) -> None:
    _accepted(browser, rp, variant, extra="foobar")  # RFC 6749 §3.1: ignored


@variants(*ALL)
def test_oidcc_claims_essential(browser: Browser, rp: RP, variant: Variant) -> None:
    """`name` asked for as essential (in the ID token for response_type=id_token, else at
    userinfo): the request must succeed; a missing `name` is only a warning."""
    where = "id_token" if variant.response_type == "id_token" else "userinfo"
    flow = _accepted(browser, rp, variant,
                     claims=json.dumps({where: {"name": {"essential": True}}}))
    if flow.userinfo is not None:
        _check_userinfo(flow.userinfo, flow.claims)


def _refused(browser: Browser, rp: RP, variant: Variant, error: str, **extra: str) -> None:
    """The OP either processes the parameter or refuses it with `error` at the redirect URI
    (OIDC Core §3.1.2.6); this provider refuses, as discovery says."""
    request = rp.request(variant, **extra)
    response = browser.go(request.url)
    answer = browser.outcome(response, rp.redirect_uri, wallet=False)
    assert rp.check_error(request, answer) == error


@variants(*ALL)
def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
        browser: Browser, rp: RP, op: OP, variant: Variant) -> None:
    assert op.config["request_parameter_supported"] is False
    obj = _unsigned({"iss": rp.client_id, "aud": op.issuer, "client_id": rp.client_id,
                     "response_type": variant.response_type, "scope": "openid",
                     "redirect_uri": rp.redirect_uri, "nonce": "n"})
    _refused(browser, rp, variant, "request_not_supported", request=obj)


@variants(*ALL)
def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
        browser: Browser, rp: RP, op: OP, variant: Variant) -> None:
    assert op.config["request_uri_parameter_supported"] is False
    _refused(browser, rp, variant, "request_uri_not_supported",
             request_uri="https://rp.example/request.jwt")


@variants(*ALL)
def test_oidcc_ensure_request_object_with_redirect_uri(browser: Browser, rp: RP, op: OP,
                                                       variant: Variant) -> None:
    """The registered redirect URI only inside the request object, an unregistered one as a
    parameter: the module accepts the object's being used, or an invalid redirect_uri error
    page. This provider does not process request objects, so: the error page, never a
    redirect to the parameter's URI (RFC 6749 §4.1.2.1)."""
    unregistered = rp.redirect_uri + "/elsewhere"
    obj = _unsigned({"iss": rp.client_id, "aud": op.issuer, "client_id": rp.client_id,
                     "response_type": variant.response_type, "scope": "openid",
                     "redirect_uri": rp.redirect_uri, "nonce": "n"})
    request = RP(op, redirect_uri=unregistered).request(variant, request=obj)
    response = browser.go(request.url)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.text


# -- scopes -------------------------------------------------------------------------------------


def _check_userinfo(info: dict[str, Any], id_claims: dict[str, Any]) -> None:
    """ValidateUserInfoStandardClaims, EnsureUserInfoContainsSub,
    VerifyUserInfoAndIdTokenSameSub."""
    for name, value in info.items():
        if name in STRING_CLAIMS:
            assert isinstance(value, str), name
        if name in BOOLEAN_CLAIMS:
            assert isinstance(value, bool), name
    assert info["sub"] == id_claims["sub"]


def _scope_flow(browser: Browser, rp: RP, op: OP, variant: Variant, scope: str) -> dict[str, Any]:
    """AbstractOIDCCScopesServerTest: the scopes must be listed (the module is skipped
    otherwise); their claims come from userinfo, or from the ID token when no access token
    is issued (response_type=id_token)."""
    assert set(scope.split()) <= set(op.config["scopes_supported"])
    flow = run(browser, rp, variant, scope=scope)
    if flow.userinfo is None:
        claims = flow.claims
    else:
        _check_userinfo(flow.userinfo, flow.claims)
        claims = flow.userinfo
    for name in scope.split():  # VerifyScopesReturnedIn(UserInfo|AuthorizationEndpointIdToken)
        assert SCOPE_CLAIMS[name] <= set(claims), (name, claims)
    return claims


def _email_claims(claims: dict[str, Any]) -> None:
    """The credential's Email property, attested by a trusted attester (issue 7, §4)."""
    assert claims["email"] == EMAIL
    assert claims["email_verified"] is True


@variants(*ALL)
def test_oidcc_scope_profile(browser: Browser, rp: RP, op: OP, provisioned: dict[str, Any],
                             variant: Variant) -> None:
    """`preferred_username` is the web3name; the profile claims a KILT credential cannot
    supply (name, birthdate, ...) are absent: a warning in the module."""
    claims = _scope_flow(browser, rp, op, variant, "openid profile")
    assert claims["preferred_username"] == provisioned["user"]["web3name"]


@variants(*ALL)
def test_oidcc_scope_email(browser: Browser, rp: RP, op: OP, variant: Variant) -> None:
    _email_claims(_scope_flow(browser, rp, op, variant, "openid email"))


@variants(*ALL)
def test_oidcc_ensure_other_scope_order_succeeds(browser: Browser, rp: RP, op: OP,
                                                 variant: Variant) -> None:
    """`email openid`: scope order does not matter (RFC 6749 §3.3)."""
    _email_claims(_scope_flow(browser, rp, op, variant, "email openid"))


def test_scopes_a_kilt_credential_cannot_serve_are_not_advertised(op: OP) -> None:
    """oidcc-scope-address, -phone and -all are skipped by the suite when scopes_supported
    does not list their scopes; they must then not be listed (if one ever is, its module
    applies and needs a test here)."""
    assert not {"address", "phone"} & set(op.config["scopes_supported"])


"""The OpenID Foundation's OP test modules, replayed over real HTTP (docs/conformance.md).

Each test does what one module of the conformance suite does, against the `opendid` fixture
(a real server on the dev chain): a relying party built on authlib (`RP`) makes the requests,
a browser with a cookie jar and the reference wallet (`Browser`) follows them, and every
endpoint comes from the discovery document (`op`). Only the discovery URL is built, the way
OpenID Connect Discovery §4 says a relying party builds it from the issuer.

The checks the modules share (an ID token as `ValidateIdToken` sees it, an authorization error
as `performGenericAuthorizationEndpointErrorResponseValidation` sees it, ...) live here, so each
test states only what its module adds.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core.util import create_half_hash
from joserfc import jwk, jwt

from conftest import SECRET, STANDARD_REDIRECT, Opendid
from opendid.devtools.login_driver import LoginDriver
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient

DISCOVERY_PATH = "/.well-known/openid-configuration"
TIMEOUT = 30
# errors that mean "the user must interact" (CheckErrorFromAuthorizationEndpointIsOneThat
# RequiredAUserInterface)
USER_INTERFACE_ERRORS = {"login_required", "interaction_required", "consent_required",
                         "account_selection_required"}
# RFC 6749 §4.1.2.1 / §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E
ERROR_DESCRIPTION = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")
# RFC 6749 A.12 / A.17: access and refresh tokens are VSCHAR (%x20-7E)
VSCHAR = re.compile(r"^[\x20-\x7e]+$")


# -- the plans' variants ----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A response type and response mode, as the plans run their modules with."""

    response_type: str
    response_mode: str | None = None

    @property
    def id(self) -> str:
        words = self.response_type.replace(" ", "+")
        return f"{words}-form_post" if self.response_mode == "form_post" else words

    @property
    def code(self) -> bool:
        return "code" in self.response_type.split()

    @property
    def token(self) -> bool:
        return "token" in self.response_type.split()

    @property
    def id_token(self) -> bool:
        return "id_token" in self.response_type.split()


CODE = Variant("code")
ID_TOKEN = Variant("id_token")
ID_TOKEN_TOKEN = Variant("id_token token")
BASIC = [CODE]
IMPLICIT = [ID_TOKEN, ID_TOKEN_TOKEN]
FORM_POST = [Variant(v.response_type, "form_post") for v in BASIC + IMPLICIT]
# Basic OP, Implicit OP, and both again with response_mode=form_post (Form Post OP)
ALL = BASIC + IMPLICIT + FORM_POST


def variants(*chosen: Variant) -> Any:
    """`pytest.mark.parametrize` over plan variants, with readable ids."""
    return pytest.mark.parametrize("variant", chosen, ids=[v.id for v in chosen])


# -- the discovered provider ------------------------------------------------------------------


@dataclass(frozen=True)
class OP:
    """What a relying party knows of the provider: its discovery document and its JWKS."""

    discovery_url: str
    config: dict[str, Any]
    jwks: dict[str, Any]

    @property
    def issuer(self) -> str:
        return str(self.config["issuer"])

    def endpoint(self, name: str) -> str:
        value = self.config.get(name)
        assert isinstance(value, str) and value, f"discovery has no {name}"
        return value

    @property
    def keys(self) -> jwk.KeySet:
        return jwk.KeySet.import_key_set(self.jwks)

    @property
    def advertises_iss(self) -> bool:
        return self.config.get("authorization_response_iss_parameter_supported") is True


@pytest.fixture(scope="session")
def op(opendid: Opendid) -> OP:
    discovery_url = opendid.url + DISCOVERY_PATH
    config = requests.get(discovery_url, timeout=TIMEOUT).json()
    jwks = requests.get(config["jwks_uri"], timeout=TIMEOUT).json()
    return OP(discovery_url, config, jwks)


# -- the browser ------------------------------------------------------------------------------


class FormParser(HTMLParser):
    """The forms of a page: action, method and hidden inputs (a form_post response)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": values.get("action", ""),
                               "method": values.get("method", "get").lower(), "inputs": {}})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["inputs"][values["name"]] = values.get("value", "")


@dataclass
class AuthResponse:
    """What reached the client's redirect URI, and how."""

    params: dict[str, str]
    mode: str  # "query", "fragment" or "form_post"
    wallet: bool  # whether the provider asked for the wallet on the way
    query: dict[str, str] = field(default_factory=dict)  # the query, for fragment responses

    def __getitem__(self, name: str) -> str:
        return self.params[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)


class LoginPage(AssertionError):
    """The provider showed its login page where a module expects none."""


@dataclass
class Browser:
    """A user agent with a cookie jar (the login driver's), the reference wallet at hand."""

    driver: LoginDriver
    provider_url: str

    @property
    def http(self) -> requests.Session:
        return self.driver.http

    def go(self, url: str, post: bool = False) -> requests.Response:
        """Open `url` (by POST with its query as a form body, if asked) without following."""
        if post:
            parts = urlsplit(url)
            endpoint = parts._replace(query="").geturl()
            form = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return self.http.post(endpoint, data=form, allow_redirects=False, timeout=TIMEOUT)
        return self.http.get(url, allow_redirects=False, timeout=TIMEOUT)

    def is_login_page(self, response: requests.Response) -> bool:
        """A redirect to the provider's login page (`/`, or `/?nonce=` for DID-only login)."""
        if response.status_code not in (302, 303):
            return False
        target = urlsplit(urljoin(response.url, response.headers["Location"]))
        return (f"{target.scheme}://{target.netloc}" == self.provider_url
                and target.path == "/")

    def outcome(self, response: requests.Response, redirect_uri: str,
                wallet: bool) -> AuthResponse:
        """The authorization response in `response`: a redirect to the client, or a form_post
        page whose form targets it."""
        if response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
            if not _at(location, redirect_uri):
                raise AssertionError(f"redirected elsewhere than the client: {location}")
            parts = urlsplit(location)
            query = _params(parts.query)
            if parts.fragment:
                return AuthResponse(_params(parts.fragment), "fragment", wallet, query)
            return AuthResponse(query, "query", wallet)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return AuthResponse(self.form_post(response, redirect_uri), "form_post", wallet)

    @staticmethod
    def form_post(response: requests.Response, redirect_uri: str) -> dict[str, str]:
        """The hidden fields a form_post page (OAuth 2.0 Form Post Response Mode §2) would
        post to the client, after checking the page is one a browser would submit."""
        assert response.headers.get("Content-Type", "").startswith("text/html")
        parser = FormParser()
        parser.feed(response.text)
        assert len(parser.forms) == 1, f"expected one form, got {parser.forms}"
        form = parser.forms[0]
        assert form["method"] == "post" and form["action"] == redirect_uri, form
        csp = response.headers.get("Content-Security-Policy", "")
        form_action = [d.split()[1:] for d in csp.split(";") if d.split()[:1] == ["form-action"]]
        if form_action:  # the browser would block a post the policy does not allow
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
            allowed = form_action[0]
            assert any(source in (redirect_uri, origin, origin + "/") for source in allowed), csp
        return dict(form["inputs"])

    def authorize(self, url: str, redirect_uri: str, post: bool = False) -> AuthResponse:
        """Follow an authorization request to the client, logging in with the wallet when the
        provider shows its login page (a module's "user logs in")."""
        response = self.go(url, post)
        if not self.is_login_page(response):
            return self.outcome(response, redirect_uri, wallet=False)
        return self.log_in(redirect_uri)

    def log_in(self, redirect_uri: str) -> AuthResponse:
        """What the login page does with the wallet; then wherever the page navigates."""
        assert self.driver.open_session().status_code == 200
        self.driver.fetch_request()
        done = self.driver.submit()
        assert done.status_code == 204, done.text
        location = urljoin(self.provider_url + "/", done.headers["Location"])
        if _at(location, redirect_uri):
            parts = urlsplit(location)
            if parts.fragment:
                return AuthResponse(_params(parts.fragment), "fragment", True,
                                    _params(parts.query))
            return AuthResponse(_params(parts.query), "query", True)
        # a page of the provider's that posts the result (response_mode=form_post)
        page = self.http.get(location, allow_redirects=False, timeout=TIMEOUT)
        assert page.status_code == 200, (location, page.status_code)
        return AuthResponse(self.form_post(page, redirect_uri), "form_post", True)

    def silent(self, url: str, redirect_uri: str, post: bool = False) -> AuthResponse:
        """An authorization request the provider must answer without showing a page."""
        response = self.go(url, post)
        if self.is_login_page(response):
            raise LoginPage(f"the provider showed its login page for {url}")
        return self.outcome(response, redirect_uri, wallet=False)


def _at(location: str, redirect_uri: str) -> bool:
    return location == redirect_uri or location.startswith((redirect_uri + "?",
                                                            redirect_uri + "#"))


def jwt_header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _params(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def new_browser(opendid: Opendid, wallet: Wallet, chain: ChainClient) -> Browser:
    return Browser(LoginDriver(opendid.url, wallet, chain), opendid.url)


@pytest.fixture()
def browser(opendid: Opendid, wallet: Wallet, chain: ChainClient) -> Iterator[Browser]:
    """A fresh browser: no cookies from earlier tests ("please remove any cookies")."""
    made = new_browser(opendid, wallet, chain)
    yield made
    made.http.close()


# -- the relying party ------------------------------------------------------------------------


@dataclass
class Request:
    """An authorization request the RP sent, and what it must get back."""

    url: str
    state: str
    nonce: str | None
    variant: Variant
    code_verifier: str | None = None
    params: dict[str, str] = field(default_factory=dict)


class RP:
    """A relying party on authlib's OAuth2Session, configured from discovery only."""

    def __init__(self, op: OP, client_id: str = "standard-client", secret: str | None = SECRET,
                 redirect_uri: str = STANDARD_REDIRECT,
                 auth_method: str = "client_secret_basic") -> None:
        self.op, self.client_id, self.redirect_uri = op, client_id, redirect_uri
        self.oauth = OAuth2Session(client_id, secret, scope="openid", redirect_uri=redirect_uri,
                                   token_endpoint_auth_method=auth_method,
                                   code_challenge_method="S256")
        self.token_responses: list[requests.Response] = []

        def keep(response: requests.Response) -> requests.Response:
            self.token_responses.append(response)
            return response

        self.oauth.register_compliance_hook("access_token_response", keep)
        self.oauth.register_compliance_hook("refresh_token_response", keep)

    def request(self, variant: Variant = CODE, *, nonce: bool = True, state_length: int = 32,
                pkce: bool = False, **extra: str) -> Request:
        """An authorization request URL built by authlib from the discovered endpoint."""
        state = secrets.token_urlsafe(state_length)[:state_length]
        value = secrets.token_urlsafe(16) if nonce else None
        params: dict[str, str] = {"response_type": variant.response_type, **extra}
        if value:
            params["nonce"] = value
        if variant.response_mode:
            params["response_mode"] = variant.response_mode
        verifier = secrets.token_urlsafe(48) if pkce else None
        url, _ = self.oauth.create_authorization_url(
            self.op.endpoint("authorization_endpoint"), state=state, code_verifier=verifier,
            **params)
        return Request(url, state, value, variant, verifier, params)

    def exchange(self, code: str, verifier: str | None = None) -> dict[str, Any]:
        """The code at the token endpoint (authlib raises OAuthError on an error answer)."""
        extra = {"code_verifier": verifier} if verifier else {}
        token = self.oauth.fetch_token(self.op.endpoint("token_endpoint"), code=code,
                                       grant_type="authorization_code", **extra)
        return dict(token)

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return dict(self.oauth.refresh_token(self.op.endpoint("token_endpoint"),
                                             refresh_token=refresh_token))

    def userinfo(self, access_token: str, how: str = "get") -> requests.Response:
        """OIDC Core §5.3.1: GET or POST with the bearer header, or (RFC 6750 §2.2) the
        access token in a POST form body."""
        url = self.op.endpoint("userinfo_endpoint")
        header = {"Authorization": f"Bearer {access_token}"}
        if how == "get":
            return requests.get(url, headers=header, timeout=TIMEOUT)
        if how == "post-header":
            return requests.post(url, headers=header, timeout=TIMEOUT)
        assert how == "post-body"
        return requests.post(url, data={"access_token": access_token}, timeout=TIMEOUT)

    # -- what the modules check -------------------------------------------------------------

    def id_token_claims(self, token: str, nonce: str | None,
                        access_token: str | None = None) -> dict[str, Any]:
        """ValidateIdToken, ValidateIdTokenNonce, ValidateIdTokenSignature(UsingKid),
        CheckForSubjectInIdToken (and at_hash when there is an access token)."""
        header = jwt_header(token)
        assert header.get("kid"), "ID token without kid (OIDCC-10.1)"
        assert header["kid"] in {k["kid"] for k in self.op.jwks["keys"]}
        # raises unless the signature verifies with the JWKS key the kid names
        claims = dict(jwt.decode(token, self.op.keys, algorithms=[header["alg"]]).claims)
        now = time.time()
        assert claims["iss"] == self.op.issuer
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        assert self.client_id in audience
        if len(audience) > 1:
            assert claims.get("azp") == self.client_id
        assert isinstance(claims["exp"], int) and claims["exp"] > now
        assert isinstance(claims["iat"], int) and claims["iat"] <= now + 300
        assert isinstance(claims.get("sub"), str) and claims["sub"]
        if "auth_time" in claims:
            assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= now + 300
        if nonce is not None:
            assert claims.get("nonce") == nonce
        if access_token is not None and "at_hash" in claims:
            assert claims["at_hash"] == create_half_hash(access_token, header["alg"]).decode()
        return claims

    def check_iss(self, response: AuthResponse) -> None:
        """RFC 9207: `iss` when discovery says it is sent, always equal to the issuer
        (ValidateIssIfPresentInAuthorizationResponse)."""
        if self.op.advertises_iss:
            assert "iss" in response.params, "RFC 9207: iss is advertised but missing"
        if "iss" in response.params:
            assert response["iss"] == self.op.issuer

    def check_mode(self, request: Request, response: AuthResponse) -> None:
        """Results go where the response type and mode say (RejectAuthCodeInUrlQuery,
        RejectErrorInUrlQuery: nothing of an implicit response in the query)."""
        expected = request.variant.response_mode or ("query" if request.variant.code
                                                     else "fragment")
        assert response.mode == expected, (response.mode, response.params)
        assert not {"code", "error", "id_token", "access_token"} & set(response.query)

    def check_error(self, request: Request, response: AuthResponse) -> str:
        """performGenericAuthorizationEndpointErrorResponseValidation; the error code."""
        self.check_mode(request, response)
        assert response.get("state") == request.state
        self.check_iss(response)
        assert "error" in response.params, response.params
        assert not {"code", "id_token", "access_token"} & set(response.params)
        unexpected = set(response.params) - {"error", "error_description", "error_uri",
                                             "state", "iss"}
        assert not unexpected, unexpected
        assert ERROR_DESCRIPTION.match(response.get("error_description") or "")
        return response["error"]

    def check_success(self, request: Request, response: AuthResponse) -> None:
        """CheckMatchingCallbackParameters, CheckIfAuthorizationEndpointError,
        CheckMatchingStateParameter, and the code's length (EnsureMinimumAuthorizationCode
        Length/Entropy: 128 bits at least)."""
        self.check_mode(request, response)
        assert "error" not in response.params, response.params
        assert response.get("state") == request.state
        self.check_iss(response)
        variant = request.variant
        if variant.code:
            assert len(response["code"]) >= 22, "authorization code too short"
        if variant.token:
            assert response.get("access_token") and VSCHAR.match(response["access_token"])
            assert (response.get("token_type") or "").lower() == "bearer"
        if variant.id_token:
            assert response.get("id_token")


@dataclass
class Flow:
    """One complete module flow (AbstractOIDCCServerTest): the request, the response, the
    tokens, and the ID token's claims (from the authorization endpoint, else /token)."""

    request: Request
    response: AuthResponse
    tokens: dict[str, Any]
    claims: dict[str, Any]
    userinfo: dict[str, Any] | None

    @property
    def id_token(self) -> str:
        return str(self.tokens.get("id_token") or self.response["id_token"])

    @property
    def access_token(self) -> str | None:
        return self.tokens.get("access_token") or self.response.get("access_token")


def complete(rp: RP, request: Request, response: AuthResponse) -> Flow:
    """What AbstractOIDCCServerTest does after the callback: check it, validate the ID token,
    redeem the code (token response checks), and call the protected resource (userinfo)."""
    rp.check_success(request, response)
    claims: dict[str, Any] = {}
    variant = request.variant
    if variant.id_token:
        claims = rp.id_token_claims(response["id_token"], request.nonce,
                                    response.get("access_token"))
        if variant.token:
            assert "at_hash" in claims, "at_hash is required with an access token (§3.2.2.10)"
    tokens: dict[str, Any] = {}
    if variant.code:
        tokens = rp.exchange(response["code"], request.code_verifier)
        answer = rp.token_responses[-1]
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        assert "no-store" in answer.headers.get("Cache-Control", "")
        assert tokens["token_type"].lower() == "bearer"
        assert VSCHAR.match(tokens["access_token"])
        if "expires_in" in tokens:
            assert isinstance(tokens["expires_in"], int) and tokens["expires_in"] > 0
        claims = rp.id_token_claims(tokens["id_token"], request.nonce, tokens["access_token"])
    flow = Flow(request, response, tokens, claims, None)
    if flow.access_token:  # CallProtectedResourceWithBearerToken
        info = rp.userinfo(flow.access_token)
        assert info.status_code == 200, info.text
        flow.userinfo = info.json()
        assert flow.userinfo["sub"] == claims["sub"]
    return flow


def run(browser: Browser, rp: RP, variant: Variant = CODE, post: bool = False,
        **extra: Any) -> Flow:
    """A module's normal flow with `extra` authorization parameters; the user logs in."""
    request = rp.request(variant, **extra)
    return complete(rp, request, browser.authorize(request.url, rp.redirect_uri, post))


@pytest.fixture()
def rp(op: OP) -> RP:
    """The plans' client: confidential, client_secret_basic, RS256 ID tokens."""
    return RP(op)


def wait_until_older_than(auth_time: int, seconds: int) -> None:
    """The one wait the modules make (max_age=1: "waits ... so the previous authentication is
    no longer valid"): until the clock is strictly more than `seconds` past `auth_time`."""
    delay = auth_time + seconds + 1 - time.time()
    if delay > 0:
        time.sleep(delay)

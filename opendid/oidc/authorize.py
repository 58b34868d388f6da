"""Authorization requests: validating one, and the error responses it may earn.

The client and its redirect URI are checked first; until both are known good, an error is shown
to the user and never redirected (RFC 6749 §4.1.2.1). After that every error goes back to the
client, in the response mode the request asked for when it is one we honour, with the issuer
(RFC 9207) for standard clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opendid.oidc.results import FORM_POST, FRAGMENT, MODES, QUERY, AuthResponse, with_issuer
from opendid.store.clients import RESPONSE_TYPES, ClientRecord, ClientStore

__all__ = ["MAX_PARAM_LENGTH", "PROMPTS", "RESPONSE_MODES", "AuthRequest", "AuthorizeError",
           "error_response", "normalize_response_type", "validate_authorize"]

RESPONSE_MODES = MODES
PROMPTS = ("none", "login", "consent", "select_account")
MAX_PARAM_LENGTH = 2048
MAX_AGE_DIGITS = 10


class AuthorizeError(Exception):
    """An authorization request that fails. `redirect` is False while the client or redirect URI
    is not known good: then we must not redirect (RFC 6749 §4.1.2.1); else `response` is the
    error response for the client."""

    def __init__(self, error: str, description: str, redirect: bool,
                 response: AuthResponse | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.redirect = error, description, redirect
        self.response = response

    @property
    def location(self) -> str | None:
        return self.response.location if self.response else None


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorization request, kept in the login session."""

    client_id: str
    redirect_uri: str
    response_type: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    response_mode: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    id_token_hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["prompt"] = list(self.prompt)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthRequest:
        values = {k: data.get(k) for k in cls.__dataclass_fields__}
        values["prompt"] = tuple(data.get("prompt") or ())
        return cls(**values)  # type: ignore[arg-type]


def normalize_response_type(value: str | None) -> str | None:
    """`token id_token` and `id_token token` are one response type: the space-separated values
    are a set (OAuth 2.0 Multiple Response Types §2). Our canonical spelling, or None."""
    if not value:
        return None
    wanted = value.split(" ")
    for known in RESPONSE_TYPES:
        if sorted(wanted) == sorted(known.split(" ")):
            return known
    return None


def validate_authorize(clients: ClientStore, args: Mapping[str, str], *,
                       issuer: str) -> AuthRequest:
    """Check an authorization request; errors say whether redirecting is allowed. `issuer`
    goes on the error responses of standard clients (RFC 9207)."""
    for name, value in args.items():
        if len(value) > MAX_PARAM_LENGTH:
            raise AuthorizeError("invalid_request", f"Parameter {name} is too long", False)
    client = clients.get(args.get("client_id", "")) if args.get("client_id") else None
    if client is None:
        raise AuthorizeError("invalid_request", "Invalid client_id", False)
    redirect_uri = args.get("redirect_uri", "")
    if not _valid_uri(redirect_uri) or redirect_uri not in client.redirect_urls:
        raise AuthorizeError("invalid_request", "Invalid redirect_uri", False)
    state = args.get("state")
    raw_type = args.get("response_type")
    response_type = normalize_response_type(raw_type)
    response_mode = args.get("response_mode")
    error_mode = response_mode if _mode_allowed(response_type, response_mode) else None

    def fail(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, True, error_response(
            client, redirect_uri, response_type, state, error, description, error_mode,
            issuer=issuer))

    if "request" in args:
        raise fail("request_not_supported", "Request objects are not supported")
    if "request_uri" in args:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    if not raw_type:
        raise fail("invalid_request", "Invalid response_type")
    if response_type is None:
        raise fail("unsupported_response_type", "Invalid response_type")
    if response_type not in client.allowed_response_types:
        raise fail("unauthorized_client",
                   f"This client may not use response_type {response_type}")
    if response_mode is not None and not _mode_allowed(response_type, response_mode):
        raise fail("invalid_request", "Unsupported response_mode for this response_type")
    nonce = args.get("nonce")
    if response_type != "code" and not nonce:
        raise fail("invalid_request", "Invalid nonce")
    challenge = args.get("code_challenge")
    method = args.get("code_challenge_method") or ("S256" if challenge else None)
    if challenge and method != "S256":
        raise fail("invalid_request", "Only the S256 code_challenge_method is supported")
    if response_type == "code" and not client.client_secret and not challenge:
        raise fail("invalid_request", "PKCE (S256 code_challenge) is required for this client")
    prompt = tuple(args.get("prompt", "").split())
    if any(p not in PROMPTS for p in prompt) or ("none" in prompt and len(prompt) > 1):
        raise fail("invalid_request", "Invalid prompt")
    max_age = args.get("max_age")
    if max_age is not None and not (max_age.isascii() and max_age.isdigit()
                                    and len(max_age) <= MAX_AGE_DIGITS):
        raise fail("invalid_request", "Invalid max_age: a number of seconds")
    return AuthRequest(client.client_id, redirect_uri, response_type,
                       args.get("scope") or "openid", state, nonce, challenge, method,
                       response_mode, prompt, None if max_age is None else int(max_age),
                       args.get("id_token_hint") or None)


def error_response(client: ClientRecord, redirect_uri: str, response_type: str | None,
                   state: str | None, error: str, description: str,
                   response_mode: str | None = None, *, issuer: str) -> AuthResponse:
    """An error result: where the request's `response_mode` asked for results; else in the
    query as the original does, in the fragment for standard clients with an implicit
    response type (OIDC Core §3.2.2.6). Standard clients also get `iss` (RFC 9207);
    OpenDID-style clients the original's parameters only."""
    if response_mode in RESPONSE_MODES:
        mode = str(response_mode)
    elif client.is_standard and response_type not in (None, "code"):
        mode = FRAGMENT
    else:
        mode = QUERY
    params = {"error": error, "error_description": description, "state": state}
    return AuthResponse(redirect_uri, with_issuer(params, issuer if client.is_standard else None),
                        mode)


def _mode_allowed(response_type: str | None, response_mode: str | None) -> bool:
    """Honoured response modes: `query` for the code flow only (tokens never go in a query,
    OAuth 2.0 Multiple Response Types §5), `fragment` and `form_post` for every response
    type. Exact, case-sensitive names."""
    if response_mode in (FRAGMENT, FORM_POST):
        return True
    return response_mode == QUERY and response_type == "code"


def _valid_uri(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)

"""Authorization responses: what goes back to the client's redirect URI, and how.

A response is built once (parameters, response mode) and delivered by the web layer: a
redirect with the parameters in the query or the fragment, or, for `form_post` (OAuth 2.0 Form
Post Response Mode), a page whose form posts them to the redirect URI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

QUERY, FRAGMENT, FORM_POST = "query", "fragment", "form_post"
MODES = (QUERY, FRAGMENT, FORM_POST)


@dataclass(frozen=True)
class AuthResponse:
    """Parameters for the client's redirect URI; `None` values are left out."""

    redirect_uri: str
    params: Mapping[str, Any] = field(default_factory=dict)
    mode: str = QUERY

    @property
    def present_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.params.items() if v is not None}

    @property
    def location(self) -> str:
        """The redirect carrying the parameters in the query or the fragment. A form_post
        response has none: its parameters must never end up in a URL (tokens in a query)."""
        if self.mode == FORM_POST:
            raise ValueError("a form_post response is delivered as a form, not a redirect")
        return with_params(self.redirect_uri, self.present_params, self.mode == FRAGMENT)

    def to_dict(self) -> dict[str, Any]:
        return {"redirect_uri": self.redirect_uri, "params": self.present_params,
                "mode": self.mode}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthResponse:
        return cls(str(data["redirect_uri"]), dict(data["params"]), str(data["mode"]))


def with_issuer(params: dict[str, Any], issuer: str | None) -> dict[str, Any]:
    """RFC 9207: the issuer identifier on an authorization response (`None`: left out, as
    for OpenDID-style clients, whose responses stay the original's)."""
    if issuer is not None:
        params["iss"] = issuer
    return params


def with_params(uri: str, params: Mapping[str, Any], fragment: bool) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if fragment:
        return f"{uri}#{query}"
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"

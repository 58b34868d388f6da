"""Authorization responses: what goes back to the client's redirect URI, and how.

A response is built once (parameters, response mode) and delivered by the web layer: a
redirect with the parameters in the query or the fragment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

QUERY, FRAGMENT = "query", "fragment"


@dataclass(frozen=True)
class AuthResponse:
    """Parameters for the client's redirect URI; `None` values are left out."""

    redirect_uri: str
    params: Mapping[str, Any] = field(default_factory=dict)
    mode: str = QUERY

    @property
    def present_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if v is not None}

    @property
    def location(self) -> str:
        """The redirect carrying the parameters in the query or the fragment."""
        return with_params(self.redirect_uri, self.present_params, self.mode == FRAGMENT)


def with_params(uri: str, params: Mapping[str, Any], fragment: bool) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if fragment:
        return f"{uri}#{query}"
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"

"""The access token of a resource request (RFC 6750 §2): in the Authorization header, or in a
POST form body (§2.2); never in the query (URLs end up in logs, history and Referer headers),
and never two at once (§2: one method per request), so there is no question which one counts.
"""

from __future__ import annotations

import re

from flask import Request

# `Bearer` (any case, RFC 7235 §2.1), one space, a b64token (RFC 6750 §2.1): what every client
# sends; other whitespace is another spelling of the header, refused (docs/security.md #10).
HEADER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9\-._~+/]+=*)")
FORM = "application/x-www-form-urlencoded"


class BearerError(Exception):
    """Why a request's token was not accepted: an RFC 6750 §3.1 error code and its status."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description
        self.status = 400 if error == "invalid_request" else 401


def bearer_token(request: Request) -> str:
    """The one access token the request carries; `BearerError` when there is none, when it
    comes in the query, or when it comes twice."""
    if "access_token" in request.args:
        raise BearerError("invalid_request", "The access token must not be sent in the URL: "
                          "use the Authorization header or a POST form body")
    header = request.headers.get("Authorization")
    in_body = (request.form.getlist("access_token")
               if request.method == "POST" and request.mimetype == FORM else [])
    if in_body and header is not None:
        raise BearerError("invalid_request", "Send the access token once: in the Authorization "
                          "header or in the form body, not both")
    if len(in_body) > 1:
        raise BearerError("invalid_request", "Send the access token once")
    if in_body:
        return in_body[0]
    matched = HEADER.fullmatch(header or "")
    if matched is None:
        raise BearerError("invalid_token", "Invalid access token")
    return matched.group(1)

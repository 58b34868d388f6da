"""Delivering an authorization response to the client, as its response mode asks."""

from __future__ import annotations

from flask import Response, session

from opendid.oidc.results import AuthResponse


def to_client(result: AuthResponse) -> Response:
    """Answer the browser's request with the response itself: a 302 to the redirect URI."""
    return Response(status=302, headers={"Location": result.location})


def after_login(result: AuthResponse) -> Response:
    """The login page's last API call: a 204 whose Location the page navigates to; the login
    is over."""
    session.pop("login", None)
    response = Response(status=204)
    response.headers["Location"] = result.location
    return response

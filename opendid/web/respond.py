"""Delivering an authorization response to the client, as its response mode asks.

`query` and `fragment` are redirects. `form_post` is a page whose form posts the parameters to
the redirect URI (a script file submits it; a button does without scripts); its CSP allows
that one origin as `form-action`, or the browser would block the post. A login ends with a 204
the login page follows, and a 204 cannot post: the response then waits in the one-time store,
its key in this browser's session, until `/login/result` renders it once.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from flask import Response, render_template, session

from opendid.oidc.results import FORM_POST, AuthResponse
from opendid.web.context import services
from opendid.web.errors import CSP

RESULT_KIND = "form_post"
RESULT_PATH = "/login/result"
# The page follows the 204 at once; a code lives 60 s, so a result waiting longer is useless.
RESULT_LIFETIME = 60
SELF_FORM_ACTION = "form-action 'self'"
CSP_HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")


def to_client(result: AuthResponse) -> Response:
    """Answer the browser's request with the response itself: a 302 to the redirect URI, or
    the form_post page."""
    if result.mode == FORM_POST:
        return form_post_page(result)
    return Response(status=302, headers={"Location": result.location})


def after_login(result: AuthResponse) -> Response:
    """The login page's last API call: a 204 whose Location the page navigates to; the login
    is over. A form_post response is kept for `/login/result` (one time, this session only)."""
    session.pop("login", None)
    response = Response(status=204)
    if result.mode == FORM_POST:
        key = os.urandom(32).hex()
        services().onetime.put(RESULT_KIND, key, result.to_dict(), RESULT_LIFETIME)
        session[RESULT_KIND] = key
        response.headers["Location"] = RESULT_PATH
    else:
        response.headers["Location"] = result.location
    return response


def pending_result() -> Response | None:
    """The form_post response this session's login ended with, taken once (of two racing
    requests one gets it); None when there is none, it was taken, or it expired."""
    key = session.pop(RESULT_KIND, None)
    if not isinstance(key, str):
        return None
    data = services().onetime.take(RESULT_KIND, key)
    return None if data is None else form_post_page(AuthResponse.from_dict(data))


def form_post_page(result: AuthResponse) -> Response:
    """The auto-submitting form (OAuth 2.0 Form Post Response Mode); values are escaped by
    the template. It carries codes or tokens: never cached."""
    html = render_template("form_post.html", action=result.redirect_uri,
                           params=result.present_params,
                           app_name=services().config.displayName)
    response = Response(html, status=200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP.replace(
        SELF_FORM_ACTION, f"form-action {csp_origin(result.redirect_uri)}")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def csp_origin(uri: str) -> str:
    """The redirect URI's origin as a CSP source (no user info, path or query: only where the
    form may post). A host CSP cannot spell (an IPv6 literal) falls back to its scheme."""
    parts = urlsplit(uri)
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii").lower()
        port = parts.port
    except (UnicodeError, ValueError):
        return f"{parts.scheme}:"
    if not CSP_HOST.fullmatch(host):
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")

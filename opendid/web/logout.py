"""`/api/v1/logout`: RP-initiated logout 1.0 (GET, or POST with a form body).

The provider session ends at once when the request carries a valid `id_token_hint` of the user
logged in; otherwise the user confirms on a page first (the spec's MUST: a link without a hint
could come from anyone). The confirmation form carries a value derived from the session cookie,
which another site cannot read. Afterwards: the registered `post_logout_redirect_uri` (with
`state`), or a plain "you are logged out" page.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request

from opendid.oidc.logout import LogoutError, validate_logout
from opendid.web import sso_cookie
from opendid.web.context import services
from opendid.web.errors import CSP

bp = Blueprint("logout", __name__, url_prefix="/api/v1")

FORWARDED = ("id_token_hint", "post_logout_redirect_uri", "client_id", "state")


def confirm_value(session_id: str) -> str:
    """What the confirmation form must send back: only the cookie's holder can know it."""
    return hashlib.sha256(b"opendid-logout-confirm:" + session_id.encode()).hexdigest()


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response | tuple[str, int]:
    args = request.form if request.method == "POST" else request.args
    svc = services()
    try:
        wanted = validate_logout(svc.clients, svc.keyring, svc.config.oidc_issuer, args)
    except LogoutError as exc:
        return render_template("error.html", title="This logout link is not valid",
                               message=str(exc)), 400
    session_id = sso_cookie.read()
    session = svc.sso.find(session_id)
    if session is not None and session_id is not None and wanted.hint_sub != session.did:
        given = args.get("confirm", "") if request.method == "POST" else ""
        if not hmac.compare_digest(given.encode(), confirm_value(session_id).encode()):
            return _confirm_page(session_id, wanted.redirect, session.web3name or session.did)
    svc.sso.end(session_id)
    if wanted.redirect is not None:
        response = redirect(wanted.redirect, 302)
    else:
        response = Response(render_template("logged_out.html",
                                            refused_redirect=wanted.refused_redirect))
    sso_cookie.clear(response)
    response.headers["Cache-Control"] = "no-store"
    return response


def _confirm_page(session_id: str, target: str | None, who: str) -> Response:
    fields = {name: request.values[name] for name in FORWARDED if request.values.get(name)}
    response = Response(render_template("logout_confirm.html", fields=fields, who=who,
                                        confirm=confirm_value(session_id)))
    response.headers["Cache-Control"] = "no-store"
    if target is not None:  # the form's POST is answered by a redirect there: allow it
        parts = urlsplit(target)
        response.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}")
    return response

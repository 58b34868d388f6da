"""The login page at `/` (server-rendered; HTMX and the wallet bridge in static/js)."""

from __future__ import annotations

from flask import Blueprint, render_template

from opendid.web.context import services

bp = Blueprint("pages", __name__)


@bp.get("/")
def login_page() -> str:
    from flask import session

    login = session.get("login")
    svc = services()
    client_id = login["request"]["client_id"] if isinstance(login, dict) else None
    return render_template("login.html", client_id=client_id, dev=svc.dev,
                           app_name=svc.config.displayName)

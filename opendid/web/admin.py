"""`/admin`: the client admin page (enabled by `admin.enabled`), thin over `opendid.admin`.

The admin logs in through this provider (`admin/login.py`); the admin session is its own
cookie (`opendid_admin`: HttpOnly, SameSite=Strict, path /admin, Secure in production). Every
request but the login's own GETs needs a live session of a DID still on the allow-list, and
every unsafe method (anything but GET/HEAD) the session's CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request

from opendid.admin import audit
from opendid.admin import login as admin_login
from opendid.admin.allowlist import AdminList
from opendid.admin.clients import EDITABLE_SOURCES, ClientAdmin, NotFound, ReadOnly, where
from opendid.admin.forms import KINDS, ClientForm, FormErrors
from opendid.admin.sessions import AdminSession, AdminSessions
from opendid.config import ID_TOKEN_ALGORITHMS
from opendid.kilt.errors import ChainError, ChainUnavailable
from opendid.login.describe import describe_requirement
from opendid.services import Services
from opendid.web.context import services

bp = Blueprint("admin", __name__, url_prefix="/admin")

COOKIE = "opendid_admin"
LOGIN_COOKIE = "opendid_admin_login"
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
OPEN_ENDPOINTS = ("admin.home", "admin.login", "admin.callback")


@dataclass
class Admin:
    allowlist: AdminList
    sessions: AdminSessions
    clients: ClientAdmin
    lifetime: int


def init_app(app: Flask, svc: Services) -> None:
    """Register the built-in admin client (or remove it when the page is off) and, when on,
    the blueprint."""
    config = svc.config.admin
    admin_login.register_client(svc.clients, svc.config.oidc_issuer, config.enabled)
    if not config.enabled:
        return
    db = svc.clients.db
    admin = Admin(AdminList(db, config.dids), AdminSessions(db),
                  ClientAdmin(svc.clients, svc.chain, svc.config.production),
                  config.sessionLifetime)
    app.extensions["opendid-admin"] = admin
    housekeeper = app.extensions.get("opendid-housekeeper")
    if housekeeper is not None:
        housekeeper.steps.append(admin.sessions.purge)
    app.register_blueprint(bp)


def _admin() -> Admin:
    return cast(Admin, current_app.extensions["opendid-admin"])


def _session() -> AdminSession:
    return cast(AdminSession, g.admin_session)


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    session: AdminSession | None = g.get("admin_session")
    return render_template(template, admin_did=session.did if session else None,
                           csrf=session.csrf if session else "", **context), status


def refused(title: str, message: str, status: int = 403) -> tuple[str, int]:
    return page("admin/refused.html", status, title=title, message=message)


@bp.before_request
def require_admin() -> Response | tuple[str, int] | None:
    """The session, the allow-list and (for unsafe methods) the CSRF token, before any view."""
    admin = _admin()
    session = admin.sessions.find(request.cookies.get(COOKIE))
    if session is not None and not admin.allowlist.allows(session.did):
        admin.sessions.end(session)  # removed from the allow-list since: the session ends
        audit.event(session.did, "lost admin rights: session ended")
        session = None
    g.admin_session = session
    if request.endpoint in OPEN_ENDPOINTS and request.method in ("GET", "HEAD"):
        return None
    if session is None:
        if request.method in ("GET", "HEAD"):
            return redirect("/admin/", 303)
        return refused("Not logged in", "Your admin session ended: log in again.")
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
        if not session.csrf_matches(given):
            audit.event(session.did, f"sent a request without a valid CSRF token: "
                        f"{request.method} {request.path}")
            return refused("Request refused", "The form was stale or not sent by this page: "
                           "reload the page and try again.")
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True,
                        samesite="Strict", secure=services().config.production)


def _clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="Strict",
                           secure=services().config.production)


# -- logging in and out ------------------------------------------------------------------------


@bp.get("/")
def home() -> tuple[str, int]:
    if g.admin_session is None:
        return page("admin/login.html")
    svc = services()
    listed = []
    for client in sorted(svc.clients.all(), key=lambda c: c.client_id):
        source = svc.clients.source(client.client_id)
        listed.append({"client": client, "source": source, "where": where(source),
                       "editable": source in EDITABLE_SOURCES
                       and client.client_id != admin_login.ADMIN_CLIENT_ID})
    return page("admin/clients.html", clients=listed)


@bp.get("/login")
def login() -> Response:
    svc = services()
    pending = admin_login.start(svc.onetime, svc.config.oidc_issuer)
    response = redirect(pending.authorize_url, 303)
    _set_cookie(response, LOGIN_COOKIE, pending.login_id, admin_login.PENDING_TTL)
    return response


@bp.get("/callback")
def callback() -> Response | tuple[str, int]:
    if request.method == "HEAD":  # a prefetch or link checker must not use up the login
        return Response(status=204)
    svc, admin = services(), _admin()
    args = {k: v for k, v in request.args.items() if isinstance(v, str)}
    try:
        identity = admin_login.finish(svc.onetime, svc.grants, svc.config.oidc_issuer,
                                      request.cookies.get(LOGIN_COOKIE), args)
    except admin_login.AdminLoginError as exc:
        text, status = refused("Admin login failed", str(exc), 400)
        response = Response(text, status=status, mimetype="text/html")
        _clear_cookie(response, LOGIN_COOKIE)
        return response
    if not admin.allowlist.allows(identity.did):
        audit.event(identity.did, "refused: not on the admin allow-list")
        text, status = refused("Not an admin", f"{identity.did} is not on the admin list "
                               "of this provider. Ask an operator to run `opendid admin add-did`.")
        response = Response(text, status=status, mimetype="text/html")
        _clear_cookie(response, LOGIN_COOKIE)
        return response
    session_id, _ = admin.sessions.create(identity.did, admin.lifetime)
    audit.event(identity.did, "logged in")
    response = redirect("/admin/", 303)
    _clear_cookie(response, LOGIN_COOKIE)
    _set_cookie(response, COOKIE, session_id, admin.lifetime)
    return response


@bp.post("/logout")
def logout() -> Response:
    session = _session()
    _admin().sessions.end(session)
    audit.event(session.did, "logged out")
    response = redirect("/admin/", 303)
    _clear_cookie(response, COOKIE)
    return response


# -- clients -----------------------------------------------------------------------------------


def _form_page(form: ClientForm, creating: bool, status: int = 200,
               errors: dict[str, str] | None = None) -> tuple[str, int]:
    return page("admin/client_form.html", status, form=form.with_blank_row(), creating=creating,
                errors=errors or {}, kinds=KINDS, algs=ID_TOKEN_ALGORITHMS)


def _chain_down(form: ClientForm, creating: bool) -> tuple[str, int]:
    return _form_page(form, creating, 503, {
        "": "The KILT chain cannot be read now, so the requirements cannot be checked: "
            "nothing was saved. Try again in a moment."})


@bp.get("/clients/new")
def new_client() -> tuple[str, int]:
    return _form_page(ClientForm(), creating=True)


@bp.post("/clients")
def create_client() -> tuple[str, int]:
    form = ClientForm.from_request(request.form)
    try:
        saved = _admin().clients.create(form, _session().did)
    except FormErrors as exc:
        return _form_page(form, True, exc.status, exc.errors)
    except (ChainUnavailable, ChainError):
        return _chain_down(form, True)
    return page("admin/saved.html", 201, client_id=saved.record.client_id, secret=saved.secret,
                action="created")


@bp.get("/clients/<client_id>")
def show_client(client_id: str) -> tuple[str, int]:
    svc = services()
    client = svc.clients.get(client_id)
    if client is None:
        return refused("No such client", f"There is no client {client_id}.", 404)
    try:
        _admin().clients.editable(client_id)
    except ReadOnly as exc:
        source = svc.clients.source(client_id)
        return page("admin/client_view.html", client=client, where=where(source),
                    requirements=[describe_requirement(r) for r in client.requirements],
                    message=str(exc))
    return _form_page(ClientForm.from_record(client), creating=False)


@bp.post("/clients/<client_id>")
def update_client(client_id: str) -> tuple[str, int]:
    form = ClientForm.from_request(request.form, client_id)
    try:
        saved = _admin().clients.update(client_id, form, _session().did)
    except NotFound:
        return refused("No such client", f"There is no client {client_id}.", 404)
    except ReadOnly as exc:
        return refused("Read-only client", str(exc))
    except FormErrors as exc:
        return _form_page(form, False, exc.status, exc.errors)
    except (ChainUnavailable, ChainError):
        return _chain_down(form, False)
    return page("admin/saved.html", client_id=client_id, secret=saved.secret, action="saved")


@bp.post("/clients/<client_id>/delete")
def delete_client(client_id: str) -> Response | tuple[str, int]:
    try:
        _admin().clients.delete(client_id, _session().did)
    except NotFound:
        return refused("No such client", f"There is no client {client_id}.", 404)
    except ReadOnly as exc:
        return refused("Read-only client", str(exc))
    return redirect("/admin/", 303)


@bp.post("/clients/<client_id>/secret")
def rotate_secret(client_id: str) -> tuple[str, int]:
    try:
        secret = _admin().clients.rotate_secret(client_id, _session().did)
    except NotFound:
        return refused("No such client", f"There is no client {client_id}.", 404)
    except ReadOnly as exc:
        return refused("Read-only client", str(exc))
    except FormErrors as exc:
        return refused("No secret to rotate", exc.errors[""], 400)
    return page("admin/saved.html", client_id=client_id, secret=secret,
                action="given a new secret")

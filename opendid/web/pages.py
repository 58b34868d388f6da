"""The login page at `/` and the HTMX partials it swaps in (wallets, progress, failures)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    render_template,
    request,
    send_from_directory,
    session,
)

from opendid.login.describe import describe_requirement, failure, steps
from opendid.oidc.authorize import AuthRequest
from opendid.web import jsonbody, respond
from opendid.web.context import login_or_none, services

bp = Blueprint("pages", __name__)

MAX_WALLETS = 20


@bp.get("/")
def login_page() -> str:
    login = login_or_none()
    svc = services()
    client = svc.clients.get(login["request"]["client_id"]) if login else None
    return render_template(
        "login.html",
        client_id=client.client_id if client else None,
        requirements=[describe_requirement(r) for r in client.requirements] if client else [],
        mode="credential" if client and client.requirements else "did",
        nonce=(login or {}).get("did_nonce", ""),
        signed_in_as=(login or {}).get("signed_in_as"),
        dev=svc.dev,
        app_name=svc.config.displayName,
    )


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask every origin for it, also on pages that link no icon (JSON, error pages)."""
    return send_from_directory(str(current_app.static_folder), "favicon.svg",
                               mimetype="image/svg+xml", max_age=86400)


@bp.post("/login/wallets")
def wallets() -> str:
    try:
        found = jsonbody.loads(request.form.get("wallets", "[]"))
    except ValueError:
        found = []
    listed = [
        {"key": str(w.get("key", ""))[:64], "name": str(w.get("name") or w.get("key"))[:64]}
        for w in (found if isinstance(found, list) else [])[:MAX_WALLETS]
        if isinstance(w, dict) and w.get("key")
    ]
    return render_template("partials/wallets.html", wallets=listed,
                           mode=request.form.get("mode", "credential"))


@bp.get("/login/progress")
def progress() -> str:
    mode = request.args.get("mode", "credential")
    return render_template("partials/progress.html",
                           steps=steps(mode, request.args.get("step", ""),
                                       request.args.get("state", "active")))


@bp.get("/login/failure")
def failed() -> str:
    reason = request.args.get("reason", "error")
    title, message = failure(reason)
    detail = request.args.get("detail", "")[:300]
    return render_template("partials/failure.html", title=title, message=message, detail=detail,
                           retry=reason != "expired" and login_or_none() is not None)


@bp.get("/login/cancel")
def cancel() -> Response | tuple[str, int]:
    login = login_or_none()
    if login is None:
        return render_template("error.html", title="No login in progress",
                               message="There is no login to cancel."), 400
    result = services().provider.cancel(AuthRequest.from_dict(login["request"]))
    session.pop("login", None)
    return respond.to_client(result)  # access_denied, in the request's response mode


@bp.get("/login/result")
def result() -> Response | tuple[str, int]:
    """Where the login page goes when the login ended in a form_post response: the form,
    once, for this browser session only. A HEAD (a link checker, a prefetch) delivers
    nothing and consumes nothing."""
    if request.method == "HEAD":
        return Response(status=204)
    page = respond.pending_result()
    if page is None:
        return render_template("error.html", title="No login result",
                               message="There is no login result to deliver."), 400
    return page

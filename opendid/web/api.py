"""OpenDID's `/api/v1` endpoints (contract, "Endpoints"), thin over login and oidc."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    session,
)

from opendid.kilt.dids import parse_full_did
from opendid.kilt.errors import ChainError, ChainUnavailable, InvalidDid
from opendid.login import policies
from opendid.login.identity import Identity
from opendid.login.service import LoginError
from opendid.oidc.authorize import (
    AuthorizeError,
    AuthRequest,
    validate_authorize,
)
from opendid.oidc.sso import Decision, Refuse, Reuse, ShowLogin
from opendid.store.clients import ClientRecord
from opendid.store.sso import requirements_fingerprint
from opendid.web import outcomes, respond, sso_cookie
from opendid.web.bearer import BearerError, bearer_token
from opendid.web.context import current_login, save_login, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FORM = "application/x-www-form-urlencoded"


def text(message: str, status: int = 200) -> Response:
    return Response(message, status=status, mimetype="text/plain")


def found(location: str) -> Response:
    """302 with an empty body, as the original answers."""
    return Response(status=302, headers={"Location": location})


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int]:
    """By GET, or by POST with a form body (OIDC Core 3.1.2.1). A provider session that
    covers the request answers it at once (single sign-on); else the login page."""
    svc = services()
    if request.method == "POST" and request.mimetype != FORM:
        return render_template("error.html", title="This login request is not valid",
                               message=f"A POST authorization request needs a {FORM} body"), 400
    try:
        auth = validate_authorize(svc.clients, request.form if request.method == "POST"
                                  else request.args, issuer=svc.config.oidc_issuer)
    except AuthorizeError as exc:
        if exc.redirect and exc.response:
            return respond.to_client(exc.response)
        return render_template("error.html", title="This login link is not valid",
                               message=exc.description), 400
    client = svc.provider.client_for(auth)
    decision = svc.single_sign_on.decide(auth, client, svc.sso.find(sso_cookie.read()))
    if isinstance(decision, Reuse):
        decision = policy_on_reuse(auth, client, decision)
    if isinstance(decision, (Reuse, Refuse)) and session:
        session.clear()  # a new request supersedes this browser's login or undelivered result
    if isinstance(decision, Reuse):
        result = svc.provider.complete(auth, client, decision.identity)
        outcomes.login_succeeded(auth, client, result, flow="sso")
        return respond.to_client(result)
    if isinstance(decision, Refuse):
        return respond.to_client(svc.provider.error(auth, decision.error,
                                                    decision.description))
    login: dict[str, Any] = {"id": os.urandom(16).hex(), "request": auth.to_dict()}
    if decision.signed_in_as:
        login["signed_in_as"] = decision.signed_in_as
    if decision.hint_sub:
        login["hint_sub"] = decision.hint_sub
    if not client.requirements:
        login["did_nonce"] = auth.nonce or os.urandom(16).hex()
    session.clear()
    save_login(login)
    current_app.session_interface.regenerate(session)  # a new login gets a new session id
    if "did_nonce" in login:
        return found(f"/?nonce={quote(login['did_nonce'])}")
    return found("/")


@bp.get("/challenge")
def get_challenge() -> Response:
    login = current_login()
    return jsonify(services().login.new_challenge(login["id"]))


@bp.post("/challenge")
def post_challenge() -> Response:
    login = current_login()
    key_uri = services().login.accept_challenge(login["id"], request.get_json(silent=True))
    login["wallet_key_uri"] = key_uri
    save_login(login)
    return text("Challenge accepted")


def login_client(login: dict[str, Any]) -> tuple[AuthRequest, ClientRecord]:
    """The login's authorization request and its client (which may have been removed since)."""
    auth = AuthRequest.from_dict(login["request"])
    client = services().clients.get(auth.client_id)
    if client is None:
        raise LoginError(400, "Invalid client_id", "invalid_client")
    return auth, client


@bp.get("/credentials")
def get_credentials() -> Response:
    login = current_login()
    if "wallet_key_uri" not in login:
        raise LoginError(401, "Failed to get session", "no_session")
    svc = services()
    _, client = login_client(login)
    envelope, challenge = svc.login.request_credential(login["id"], login["wallet_key_uri"],
                                                       client.requirements)
    login["credential_challenge"] = challenge
    save_login(login)
    return jsonify(envelope)


@bp.post("/credentials")
def post_credentials() -> Response:
    login = current_login()
    if "credential_challenge" not in login:
        raise LoginError(401, "Failed to get session", "no_session")
    svc = services()
    auth, client = login_client(login)
    identity = svc.login.submit_credential(login["id"], login["credential_challenge"],
                                           client.requirements, request.get_json(silent=True))
    return finish_login(login, auth, client, identity)


@bp.post("/did/<path:token>")
def did_login(token: str) -> Response:
    login = current_login()
    if "did_nonce" not in login:
        raise LoginError(401, "Failed to verify JWT: this application requires a credential",
                         "wrong_flow")
    svc = services()
    auth, client = login_client(login)
    identity = svc.login.did_login(login["id"], login["did_nonce"], token)
    return finish_login(login, auth, client, identity)


def check_policy(auth: AuthRequest, client: ClientRecord, identity: Identity) -> None:
    """The client's login policies over the claims of the ID token it would get: a 403
    unless all hold. That token carries the scope's standard claims only when no access token
    comes with it (implicit `id_token`); the hashes of a code or access token are not known
    yet, and no policy needs them."""
    if client.checks_directory is None:
        return
    scope = auth.scope if auth.response_type == "id_token" else None
    claims = services().tokens.id_token_claims(client, identity, auth.nonce, scope=scope)
    policies.enforce(client.client_id, client.checks_directory, claims)


def policy_on_reuse(auth: AuthRequest, client: ClientRecord, decision: Reuse) -> Decision:
    """A provider session answers only for an identity the client's policies accept; else
    the wallet (someone else may log in), or `access_denied` when no page may be shown."""
    try:
        check_policy(auth, client, decision.identity)
    except LoginError as exc:
        if "none" in auth.prompt:
            return Refuse("access_denied", exc.message)
        return ShowLogin(hint_sub=decision.identity.did if auth.id_token_hint else None)
    return decision


def finish_login(login: dict[str, Any], auth: AuthRequest, client: ClientRecord,
                 identity: Identity) -> Response:
    """The client's answer, and the provider session this browser now holds. A client that
    named its user (`id_token_hint`) gets `login_required` when someone else logged in. The
    client's login policies come first: a refused login issues nothing and opens no session."""
    check_policy(auth, client, identity)
    svc = services()
    hint_sub = login.get("hint_sub")
    if hint_sub is not None and hint_sub != identity.did:
        outcomes.login_refused(auth, client, "other_user", outcomes.FLOWS[request.endpoint])
        return respond.after_login(svc.provider.error(
            auth, "login_required", "The user who logged in is not the one in id_token_hint"))
    result = svc.provider.complete(auth, client, identity)
    outcomes.login_succeeded(auth, client, result)
    response = respond.after_login(result)
    session_id = svc.sso.login(sso_cookie.read(), client.client_id,
                               requirements_fingerprint(client.requirements), identity,
                               svc.config.ssoSessionLifetime)
    sso_cookie.store(response, session_id)
    return response


@bp.post("/token")
def token() -> Response:
    response = services().token_endpoint.server.create_token_response()
    outcomes.token_response("token", request.form.get("grant_type"), response)
    return response


@bp.post("/refresh")
def refresh() -> Response:
    body = request.get_json(silent=True)
    token = body.get("refreshToken") if isinstance(body, dict) else None
    result = services().token_endpoint.refresh_opendid(token) if isinstance(token, str) else None
    response = text("Invalid token", 401) if result is None else jsonify(result)
    outcomes.token_response("refresh", "opendid_refresh", response)
    if result is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """The token in the Authorization header, or in a POST form body (RFC 6750 §2.2)."""
    try:
        claims = services().userinfo.claims(bearer_token(request))
    except BearerError as exc:
        return bearer_error(exc)
    if claims is None:
        return bearer_error(BearerError("invalid_token", "Invalid access token"))
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response


def bearer_error(exc: BearerError) -> Response:
    """RFC 6750 §3: the error in the body and in `WWW-Authenticate`."""
    response = jsonify(error=exc.error, error_description=exc.description)
    response.status_code = exc.status
    response.headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
    return response


@bp.get("/endpoint")
def endpoint() -> Response:
    return jsonify(services().config.chain_url)


@bp.get("/health")
def health() -> Response:
    svc = services()
    try:
        svc.chain.health()
    except (ChainUnavailable, ChainError):
        return jsonify(status="unavailable", failed="chain", detail="KILT chain unreachable"), 503
    try:
        found = svc.chain.did(svc.config.wellKnownDid.did) is not None
    except (ChainUnavailable, ChainError):
        found = False
    if not found:
        return jsonify(status="unavailable", failed="service DID",
                       detail=f"{svc.config.wellKnownDid.did} does not resolve on chain"), 503
    if svc.etcd is None:
        return jsonify(status="ok")
    # etcd down: logins go on with the clients last read, so 200, but "degraded"
    etcd = svc.etcd.health()
    return jsonify(status="ok" if etcd.connected else "degraded", etcd=etcd.as_json())


@bp.get("/did-key/<did>")
def did_key(did: str) -> Response:
    """This project's addition for DID-only login: the DID's authentication key URI, which the
    page puts in the token header (`kid`) before the wallet signs it."""
    try:
        parsed = parse_full_did(did)
    except InvalidDid as exc:
        return text(f"Invalid DID: {exc}", 400)
    document = services().chain.did(parsed)
    if document is None:
        return text("DID not found on chain", 404)
    key = document.authentication
    return jsonify(keyUri=f"{parsed.uri}#0x{key.id.hex()}", type=key.type)

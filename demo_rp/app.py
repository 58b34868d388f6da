"""The demo relying party: authlib's OAuth client, configured only with the discovery URL.

It asks for `openid email profile`. "Log in (authorization code flow)" runs the code flow with
PKCE and reads the standard claims (email, preferred_username, ...) from userinfo; "Log in
(implicit flow)" asks for an id_token in the fragment, which the callback page posts back, and
finds them in the id_token (no access token). Either way the id_token is verified through JWKS,
the user is greeted by web3name or DID, and the credential named in the id_token
(`kilt_credential`) has its attestation checked on chain by the back end (`attestation.py`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Flask,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from joserfc.errors import JoseError
from werkzeug.wrappers import Response

from demo_rp.attestation import check_attestation
from opendid.kilt.chain import ChainClient
from opendid.oidc.claims import CREDENTIAL_CLAIM

SCOPE = "openid email profile"
# OpenDID's icon: one file for both sites, so neither browser tab asks for a missing one
FAVICON = Path(__file__).resolve().parents[1] / "static" / "favicon.svg"
SHOWN_CLAIMS = ("email", "email_verified", "preferred_username", "name", "given_name",
                "family_name", "nickname")


def create_demo_app(issuer: str, client_id: str, client_secret: str, base_url: str,
                    chain_url: str | None = None) -> Flask:
    """`chain_url`: where to check attestations; by default the chain the provider uses."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="demo_rp", SESSION_COOKIE_SAMESITE="Lax")
    oauth = OAuth(app)
    oauth.register(
        "opendid",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )
    remote: Any = oauth.opendid
    chains: list[ChainClient] = []

    def chain() -> ChainClient:
        """One chain client for the app, made on first use."""
        if not chains:
            url = chain_url or str(requests.get(f"{issuer}/api/v1/endpoint", timeout=10).json())
            chains.append(ChainClient(url))
        return chains[0]

    def greet(claims: dict[str, Any], flow: str) -> str:
        credential = claims.get(CREDENTIAL_CLAIM)
        check = check_attestation(chain(), credential) if isinstance(credential, dict) else None
        return render_template("greeting.html", name=claims.get("w3n") or claims["sub"],
                               did=claims["sub"], web3name=claims.get("w3n") or "",
                               properties=claims.get("pro") or {}, flow=flow,
                               standard={k: claims[k] for k in SHOWN_CLAIMS if k in claims},
                               credential=credential, check=check)

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    @app.get("/favicon.svg")
    @app.get("/favicon.ico")  # asked for by browsers on pages without a link (error pages)
    def favicon() -> Response:
        return send_file(FAVICON, mimetype="image/svg+xml", max_age=86400)

    @app.get("/login/code")
    def login_code() -> Response:
        nonce = secrets.token_urlsafe(16)
        return remote.authorize_redirect(base_url + "/callback", nonce=nonce)

    @app.get("/callback")
    def callback() -> str | tuple[str, int]:
        if "error" in request.args:
            return render_template("failed.html", error=request.args["error"],
                                   description=request.args.get("error_description", "")), 400
        token = remote.authorize_access_token()
        # the id_token's claims, then userinfo's: the scopes' claims come from there when an
        # access token is issued (OIDC Core 5.4)
        claims = {**token["userinfo"], **remote.userinfo(token=token)}
        if claims["sub"] != token["userinfo"]["sub"]:
            abort(400, "userinfo is about someone else")
        return greet(claims, "authorization code flow")

    @app.get("/login/implicit")
    def login_implicit() -> Response:
        metadata = remote.load_server_metadata()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        session["implicit"] = {"state": state, "nonce": nonce}
        url, _ = remote._get_oauth_client().create_authorization_url(
            metadata["authorization_endpoint"], redirect_uri=base_url + "/callback/implicit",
            response_type="id_token", state=state, nonce=nonce)
        return redirect(url)

    @app.get("/callback/implicit")
    def implicit_page() -> str:
        return render_template("implicit.html", action=url_for("implicit_result"))

    @app.post("/callback/implicit")
    def implicit_result() -> str | tuple[str, int]:
        expected = session.pop("implicit", None)
        if "error" in request.form:
            return render_template("failed.html", error=request.form["error"],
                                   description=request.form.get("error_description", "")), 400
        if not expected or request.form.get("state") != expected["state"]:
            abort(400, "state does not match")
        try:
            claims = remote.parse_id_token({"id_token": request.form.get("id_token", "")},
                                           nonce=expected["nonce"])
        except (AuthlibBaseError, JoseError, ValueError) as exc:
            return render_template("failed.html", error="invalid id_token",
                                   description=str(exc)), 400
        return greet(claims, "implicit flow")

    return app


def main() -> None:
    port = int(os.environ.get("DEMO_PORT", "1606"))
    base_url = os.environ.get("DEMO_BASE_URL", f"http://localhost:{port}")
    app = create_demo_app(os.environ["DEMO_ISSUER"], os.environ["DEMO_CLIENT_ID"],
                          os.environ["DEMO_CLIENT_SECRET"], base_url,
                          os.environ.get("DEMO_CHAIN_URL"))
    app.run(host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()

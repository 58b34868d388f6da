"""The demo relying party: authlib's OAuth client, configured only with the discovery URL.

"Log in (authorization code flow)" runs the code flow with PKCE; "Log in (implicit flow)" asks
for an id_token in the fragment, which the callback page posts back. Either way the id_token is
verified through JWKS and the user is greeted by web3name or DID.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError
from werkzeug.wrappers import Response


def create_demo_app(issuer: str, client_id: str, client_secret: str, base_url: str) -> Flask:
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="demo_rp", SESSION_COOKIE_SAMESITE="Lax")
    oauth = OAuth(app)
    oauth.register(
        "opendid",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid", "code_challenge_method": "S256"},
    )
    remote: Any = oauth.opendid

    def greet(claims: dict[str, Any], flow: str) -> str:
        return render_template("greeting.html", name=claims.get("w3n") or claims["sub"],
                               did=claims["sub"], web3name=claims.get("w3n") or "",
                               properties=claims.get("pro") or {}, flow=flow)

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

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
        return greet(token["userinfo"], "authorization code flow")

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
                          os.environ["DEMO_CLIENT_SECRET"], base_url)
    app.run(host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()

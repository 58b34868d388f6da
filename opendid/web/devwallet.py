"""Dev-only endpoints behind the page's "Dev wallet" (registered only with --dev).

The wallet's keys stay on the server; the page's dev-wallet.js plays the extension and reaches
the reference wallet here. It asks the user to approve what it shares, as Sporran does.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template, request, session

from opendid.devtools.wallet import Wallet, WalletSession
from opendid.kilt.chain import ChainClient
from opendid.kilt.errors import KiltError
from opendid.web import jsonbody
from opendid.web.context import services

bp = Blueprint("devwallet", __name__, url_prefix="/dev/wallet")


@cache
def _load(path: Path) -> Wallet:
    return Wallet.load(path)


@cache
def _wallet_chain(url: str) -> ChainClient:
    """The wallet's own connection to the chain, as a real wallet has (not the server's)."""
    return ChainClient(url)


def wallet() -> Wallet:
    path = services().wallet_path
    if path is None:
        abort(404, "no dev wallet file configured (OPENDID_WALLET)")
    return _load(path)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "expected a JSON object")
    return body


def _session() -> WalletSession:
    data = session.get("dev_wallet")
    if not isinstance(data, dict):
        abort(409, "the dev wallet has no open session")
    return WalletSession.from_dict(data["session"])


@bp.post("/session")
def start_session() -> Response:
    body = _body()
    try:
        opened = wallet().start_session(str(body.get("dAppEncryptionKeyUri")),
                                        str(body.get("challenge")),
                                        _wallet_chain(services().config.chain_url))
    except KiltError as exc:
        abort(400, str(exc))
    session["dev_wallet"] = {"session": opened.to_dict(), "dapp": str(body.get("dAppName", ""))}
    return jsonify(opened.challenge_response)


@bp.post("/request")
def read_request() -> str:
    opened = _session()
    try:
        message = jsonbody.loads(request.form.get("message", ""))
        requirements, challenge = wallet().read_request(opened, message)
    except (ValueError, KiltError) as exc:
        abort(400, f"cannot read the request: {exc}")
    session["dev_wallet"] = {**session["dev_wallet"], "session": opened.to_dict(),
                             "challenge": challenge}
    candidates = wallet().candidates(requirements)
    return render_template("partials/dev_approve.html", dapp=session["dev_wallet"]["dapp"],
                           candidates=candidates, did=wallet().did)


@bp.post("/submit")
def submit() -> Response:
    opened = _session()
    index = _body().get("index")
    held_list = wallet().credentials
    if not isinstance(index, int) or not 0 <= index < len(held_list):
        abort(400, "no such credential")
    challenge = session["dev_wallet"].get("challenge")
    if not challenge:
        abort(409, "no credential request to answer")
    return jsonify(wallet().submit(opened, held_list[index], challenge))


@bp.get("/dids")
def dids() -> Response:
    return jsonify(wallet().get_did_list())


@bp.get("/sign-prompt")
def sign_prompt() -> str:
    return render_template("partials/dev_sign.html", did=wallet().did,
                           web3name=wallet().web3name)


@bp.post("/sign")
def sign() -> Response:
    body = _body()
    data = body.get("data")
    if not isinstance(data, str) or len(data) > 1024 or body.get("did") != wallet().did:
        abort(400, "cannot sign this")
    return jsonify(wallet().sign_with_did(data))

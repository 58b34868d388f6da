"""Drive a whole login over real HTTP, as the login page's wallet bridge does.

`LoginDriver` plays the browser (cookie jar, the page's API calls) with a `Wallet` answering
the Credential API. Tests and the benchmark use it; each step is a method so negative tests can
stop in between and send something else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from opendid.devtools.wallet import HeldCredential, Wallet, WalletSession
from opendid.kilt.chain import ChainClient
from opendid.kilt.didjwt import make_did_jwt, signing_data, unsigned_did_jwt


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()
    return verifier, challenge


def result_params(location: str) -> dict[str, str]:
    """Query or fragment parameters of a redirect back to the client."""
    parts = urlsplit(location)
    raw = parts.fragment or parts.query
    return {k: v[0] for k, v in parse_qs(raw).items()}


@dataclass
class LoginDriver:
    base_url: str
    wallet: Wallet
    chain: ChainClient
    http: requests.Session = field(default_factory=requests.Session)
    wallet_session: WalletSession | None = None
    credential_challenge: str | None = None

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def authorize(self, **params: str) -> requests.Response:
        return self.http.get(self.url("/api/v1/authorize?" + urlencode(params)),
                             allow_redirects=False, timeout=30)

    def open_session(self) -> requests.Response:
        info = self.http.get(self.url("/api/v1/challenge"), timeout=30)
        info.raise_for_status()
        data = info.json()
        self.wallet_session = self.wallet.start_session(data["dAppEncryptionKeyUri"],
                                                        data["challenge"], self.chain)
        return self.http.post(self.url("/api/v1/challenge"),
                              json=self.wallet_session.challenge_response, timeout=30)

    def fetch_request(self) -> tuple[list[Any], str]:
        response = self.http.get(self.url("/api/v1/credentials"), timeout=30)
        response.raise_for_status()
        assert self.wallet_session is not None
        requirements, challenge = self.wallet.read_request(self.wallet_session, response.json())
        self.credential_challenge = challenge
        return requirements, challenge

    def submit(self, held: HeldCredential | None = None, **options: Any) -> requests.Response:
        assert self.wallet_session is not None and self.credential_challenge is not None
        if held is None:
            matches = self.wallet.matching(self.wallet_session.requirements)
            held = matches[0]
        envelope = self.wallet.submit(self.wallet_session, held, self.credential_challenge,
                                      **options)
        return self.post_credentials(envelope)

    def answer(self, **params: str) -> Any:
        """A credential login up to the wallet's encrypted answer, which is returned unsent
        (to send it later, twice, or while something is down)."""
        started = self.authorize(**params)
        assert started.status_code == 302, started.text
        opened = self.open_session()
        assert opened.status_code == 200, opened.text
        self.fetch_request()
        assert self.wallet_session is not None and self.credential_challenge is not None
        held = self.wallet.matching(self.wallet_session.requirements)[0]
        return self.wallet.submit(self.wallet_session, held, self.credential_challenge)

    def post_credentials(self, body: Any) -> requests.Response:
        return self.http.post(self.url("/api/v1/credentials"), json=body,
                              allow_redirects=False, timeout=30)

    def login(self, **params: str) -> dict[str, str]:
        """A complete credential login; the parameters the client receives."""
        started = self.authorize(**params)
        assert started.status_code == 302, started.text
        opened = self.open_session()
        assert opened.status_code == 200, opened.text
        self.fetch_request()
        done = self.submit()
        assert done.status_code == 204, done.text
        return result_params(done.headers["Location"])

    # -- DID-only login -------------------------------------------------------------------------

    def did_token(self, nonce: str, lifetime: int = 60, **overrides: Any) -> str:
        did = self.wallet.did
        key_uri = self.wallet.keys.authentication_key_uri.uri
        header = {"alg": "EdDSA", "typ": "JWT", "crv": "Ed25519", "kid": key_uri,
                  "kty": "sr25519"}
        now = int(time.time())
        payload = {"iss": did, "sub": did, "nonce": nonce, "exp": now + lifetime, "nbf": now - 1}
        payload.update(overrides)
        unsigned = unsigned_did_jwt(header, payload)
        signed = self.wallet.sign_with_did(signing_data(unsigned))
        return make_did_jwt(unsigned, signed["signature"])

    def did_login(self, token: str) -> requests.Response:
        return self.http.post(self.url("/api/v1/did/" + token), allow_redirects=False,
                              timeout=30)

    def token(self, **form: str) -> requests.Response:
        return self.http.post(self.url("/api/v1/token"), data=form, timeout=30)


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT without verifying it (tests verify signatures separately)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

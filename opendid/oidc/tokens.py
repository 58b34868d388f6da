"""Minting and checking tokens, in OpenDID's style or as standard OIDC tokens.

OpenDID-style clients (confidential, no `idTokenSignedResponseAlg`) get the original's tokens:
the config's algorithm and key, `iss` = `jwt.tokenIssuer`. Standard clients get ID tokens
signed with the JWKS key of their algorithm, `iss` = the OIDC issuer, `aud` = their client id,
plus `auth_time` and `at_hash`. Public clients are always standard (RS256 unless configured):
without a secret they could not check a token signed with the server-wide HMAC secret. Both
kinds carry OpenDID's `w3n` and `pro`. A standard client's ID token also names the credential
of a credential login (`kilt_credential`), and, when no access token is issued (implicit
`id_token`), carries the standard claims of the granted scopes (OIDC Core §5.4), since there is
no access token to fetch them from userinfo with.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from authlib.oidc.core.util import create_half_hash
from joserfc import jwt

from opendid.config import Config
from opendid.login.identity import Identity
from opendid.oidc.claims import CREDENTIAL_CLAIM, client_claims, credential_claim
from opendid.oidc.keys import KeyRing, config_key
from opendid.store.clients import ClientRecord


@dataclass(frozen=True)
class Minted:
    token: str
    jti: str
    lifetime: int


class TokenService:
    def __init__(self, config: Config, keyring: KeyRing) -> None:
        self.config = config
        self.keyring = keyring
        self._config_key = config_key(config.jwt)

    def _sign(self, claims: dict[str, Any], client: ClientRecord) -> str:
        if client.is_standard:
            alg = str(client.signing_alg)
            key = self.keyring.signing_key(alg)
            header = {"alg": alg, "typ": "JWT", "kid": key.kid}
        else:
            alg = self.config.jwt.algorithm
            key = self._config_key
            header = {"alg": alg, "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def _issuer(self, client: ClientRecord) -> str:
        return self.config.oidc_issuer if client.is_standard else self.config.jwt.tokenIssuer

    def id_token(self, client: ClientRecord, identity: Identity, nonce: str | None,
                 access_token: str | None = None, code: str | None = None,
                 scope: str | None = None) -> str:
        return self._sign(self.id_token_claims(client, identity, nonce, access_token, code,
                                               scope), client)

    def id_token_claims(self, client: ClientRecord, identity: Identity, nonce: str | None,
                        access_token: str | None = None, code: str | None = None,
                        scope: str | None = None) -> dict[str, Any]:
        """The ID token's claims (login policies read them before anything is signed)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer(client),
            "sub": identity.did,
            "iat": now,
            "exp": now + self.config.jwt.accessTokenLifetime,
            "w3n": identity.web3name or "",
            "pro": identity.properties,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if client.is_standard:
            alg = str(client.signing_alg)
            claims["aud"] = client.client_id
            claims["auth_time"] = identity.auth_time or now
            if access_token:
                claims["at_hash"] = create_half_hash(access_token, alg).decode()
            if code:
                claims["c_hash"] = create_half_hash(code, alg).decode()
            credential = credential_claim(identity)
            if credential:
                claims[CREDENTIAL_CLAIM] = credential
            if access_token is None:
                claims.update(client_claims(client, identity, scope, self.config.claimMap))
        else:
            claims["aud"] = self.config.jwt.accessTokenAudience
        return claims

    def _bearer(self, client: ClientRecord, identity: Identity, audience: str,
                lifetime: int, scope: str | None) -> Minted:
        now, jti = int(time.time()), uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": self._issuer(client), "sub": identity.did, "aud": audience,
            "iat": now, "exp": now + lifetime, "jti": jti, "client_id": client.client_id,
            "w3n": identity.web3name or "", "pro": identity.properties,
        }
        if scope:
            claims["scope"] = scope
        return Minted(self._sign(claims, client), jti, lifetime)

    def access_token(self, client: ClientRecord, identity: Identity,
                     scope: str | None = None) -> Minted:
        jwt_config = self.config.jwt
        return self._bearer(client, identity, jwt_config.accessTokenAudience,
                            jwt_config.accessTokenLifetime, scope)

    def refresh_token(self, client: ClientRecord, identity: Identity,
                      scope: str | None = None) -> Minted:
        jwt_config = self.config.jwt
        return self._bearer(client, identity, jwt_config.refreshTokenAudience,
                            jwt_config.refreshTokenLifetime, scope)

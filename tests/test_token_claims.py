"""Every claim and header of the tokens TokenService mints, compared whole (no chain, no server).

OpenDID-style clients (confidential, no `idTokenSignedResponseAlg`) must keep the original's
tokens byte for byte in meaning (docs/opendid-contract.md): config key and algorithm, no `kid`,
`iss` = `jwt.tokenIssuer`, `aud` = `jwt.accessTokenAudience`, no `auth_time` or `at_hash`.
Standard and public clients get JWKS-signed tokens with a `kid`, the OIDC issuer, `aud` = their
client id, `auth_time`, and `at_hash` / `c_hash` of the hash of their own algorithm."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from joserfc import jwk, jwt
from joserfc.errors import JoseError

from opendid.config import Config
from opendid.devtools.devchain import shared_dir
from opendid.login.identity import Identity
from opendid.oidc.keys import KeyRing
from opendid.oidc.tokens import TokenService
from opendid.store.clients import ClientRecord

SAMPLE = shared_dir() / "docs" / "config-sample.yaml"
DID = "did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTBZXKnWBcQqTh6H"
IDENTITY = Identity(DID, "someone", {"Email": "a@b.c", "Age": 7}, 1_700_000_000)
ISSUER = "https://login.example.org"
OPENDID = ClientRecord("opendid-client", "secret", ["https://x/cb"])
STANDARD = ClientRecord("std-client", "secret", ["https://x/cb"], id_token_alg="ES256")
PUBLIC = ClientRecord("public-app", None, ["https://x/cb"])


def _service(tmp_path: Path) -> tuple[TokenService, Config, KeyRing]:
    data = yaml.safe_load(SAMPLE.read_text())
    data["issuer"] = ISSUER + "/"
    data["jwt"].update(accessTokenLifetime=70, refreshTokenLifetime=700,
                       accessTokenAudience="aud-access", refreshTokenAudience="aud-refresh")
    config = Config.model_validate(data)
    ring = KeyRing(tmp_path / "jwks.json", 700)
    return TokenService(config, ring), config, ring


def _opendid(token: str, config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jwt.decode(token, jwk.OctKey.import_key(config.jwt.secretKey),
                         algorithms=["HS256"])
    return dict(decoded.header), dict(decoded.claims)


def _standard(token: str, ring: KeyRing, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jwt.decode(token, ring.verification_keys(), algorithms=[alg])
    return dict(decoded.header), dict(decoded.claims)


def _half_hash(value: str, hash_name: str) -> str:
    full = hashlib.new(hash_name, value.encode()).digest()
    return base64.urlsafe_b64encode(full[: len(full) // 2]).rstrip(b"=").decode()


def _iat(claims: dict[str, Any], before: float, after: float) -> int:
    assert int(before) <= claims["iat"] <= int(after)
    return claims["iat"]


def test_opendid_style_id_token_claims_and_header(tmp_path):
    service, config, _ = _service(tmp_path)
    before = time.time()
    token = service.id_token(OPENDID, IDENTITY, "nonce-1", access_token="at", code="code")
    header, claims = _opendid(token, config)
    iat = _iat(claims, before, time.time())
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims == {"iss": config.jwt.tokenIssuer, "sub": DID, "iat": iat, "exp": iat + 70,
                      "w3n": "someone", "pro": {"Email": "a@b.c", "Age": 7},
                      "nonce": "nonce-1", "aud": "aud-access"}


def test_opendid_style_id_token_without_nonce_or_web3name(tmp_path):
    service, config, _ = _service(tmp_path)
    before = time.time()
    token = service.id_token(OPENDID, Identity(DID, None), None)
    _, claims = _opendid(token, config)
    iat = _iat(claims, before, time.time())
    assert claims == {"iss": config.jwt.tokenIssuer, "sub": DID, "iat": iat, "exp": iat + 70,
                      "w3n": "", "pro": {}, "aud": "aud-access"}


@pytest.mark.parametrize("client, alg, hash_name", [(STANDARD, "ES256", "sha256"),
                                                    (PUBLIC, "RS256", "sha256")])
def test_standard_id_token_claims_and_header(tmp_path, client, alg, hash_name):
    service, _, ring = _service(tmp_path)
    before = time.time()
    token = service.id_token(client, IDENTITY, "n", access_token="the-access-token",
                             code="the-code")
    header, claims = _standard(token, ring, alg)
    iat = _iat(claims, before, time.time())
    assert header == {"alg": alg, "typ": "JWT", "kid": ring.signing_key(alg).kid}
    assert claims == {"iss": ISSUER, "sub": DID, "iat": iat, "exp": iat + 70,
                      "w3n": "someone", "pro": {"Email": "a@b.c", "Age": 7}, "nonce": "n",
                      "aud": client.client_id, "auth_time": 1_700_000_000,
                      "at_hash": _half_hash("the-access-token", hash_name),
                      "c_hash": _half_hash("the-code", hash_name)}


def test_standard_id_token_without_access_token_code_or_login_time(tmp_path):
    """No at_hash / c_hash without the values; auth_time falls back to now."""
    service, _, ring = _service(tmp_path)
    before = time.time()
    token = service.id_token(STANDARD, Identity(DID, None, {"x": 1}), None)
    _, claims = _standard(token, ring, "ES256")
    iat = _iat(claims, before, time.time())
    assert claims == {"iss": ISSUER, "sub": DID, "iat": iat, "exp": iat + 70, "w3n": "",
                      "pro": {"x": 1}, "aud": "std-client", "auth_time": iat}


def test_opendid_style_access_and_refresh_tokens(tmp_path):
    service, config, _ = _service(tmp_path)
    for mint, audience, lifetime in ((service.access_token, "aud-access", 70),
                                     (service.refresh_token, "aud-refresh", 700)):
        before = time.time()
        minted = mint(OPENDID, IDENTITY, "openid profile")
        header, claims = _opendid(minted.token, config)
        iat = _iat(claims, before, time.time())
        assert header == {"alg": "HS256", "typ": "JWT"}
        assert minted.lifetime == lifetime and len(minted.jti) == 32
        assert claims == {"iss": config.jwt.tokenIssuer, "sub": DID, "aud": audience,
                          "iat": iat, "exp": iat + lifetime, "jti": minted.jti,
                          "client_id": "opendid-client", "w3n": "someone",
                          "pro": {"Email": "a@b.c", "Age": 7}, "scope": "openid profile"}


@pytest.mark.parametrize("client, alg", [(STANDARD, "ES256"), (PUBLIC, "RS256")])
def test_standard_access_and_refresh_tokens(tmp_path, client, alg):
    service, _, ring = _service(tmp_path)
    for mint, audience, lifetime in ((service.access_token, "aud-access", 70),
                                     (service.refresh_token, "aud-refresh", 700)):
        before = time.time()
        minted = mint(client, Identity(DID, None))
        header, claims = _standard(minted.token, ring, alg)
        iat = _iat(claims, before, time.time())
        assert header == {"alg": alg, "typ": "JWT", "kid": ring.signing_key(alg).kid}
        assert minted.lifetime == lifetime
        assert claims == {"iss": ISSUER, "sub": DID, "aud": audience, "iat": iat,
                          "exp": iat + lifetime, "jti": minted.jti,
                          "client_id": client.client_id, "w3n": "", "pro": {}}


def test_an_empty_scope_is_left_out_and_every_token_gets_its_own_jti(tmp_path):
    service, config, _ = _service(tmp_path)
    first = service.access_token(OPENDID, IDENTITY, "")
    second = service.access_token(OPENDID, IDENTITY, "")
    assert "scope" not in _opendid(first.token, config)[1]
    assert first.jti != second.jti and first.token != second.token


def test_tokens_do_not_verify_with_the_other_kinds_key(tmp_path):
    """An OpenDID-style token is not signed with the JWKS, nor a standard one with the secret."""
    service, config, ring = _service(tmp_path)
    opendid = service.id_token(OPENDID, IDENTITY, "n")
    standard = service.id_token(PUBLIC, IDENTITY, "n")
    with pytest.raises(JoseError):
        jwt.decode(opendid, ring.verification_keys(), algorithms=["RS256", "ES256", "HS256"])
    with pytest.raises(JoseError):
        jwt.decode(standard, jwk.OctKey.import_key(config.jwt.secretKey),
                   algorithms=["HS256", "RS256"])

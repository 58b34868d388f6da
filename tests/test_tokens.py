"""OpenDID configs signing with RS*/ES* PEM keys or HS* secrets: tokens verify with that key."""

from __future__ import annotations

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwk, jwt

from opendid.config import Config
from opendid.devtools.devchain import shared_dir
from opendid.login.identity import Identity
from opendid.oidc.keys import KeyRing
from opendid.oidc.tokens import TokenService
from opendid.store.clients import ClientRecord

SAMPLE = shared_dir() / "docs" / "config-sample.yaml"
IDENTITY = Identity("did:kilt:4rjJKb7pwS6MMqtyy2bwu9T3UjKWH76UWTBZXKnWBcQqTh6H", "someone",
                    {"Email": "a@b.c"}, 1)


def _pem(key) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                 "ES256", "ES384"])
def test_opendid_style_tokens_verify_with_the_configured_key(tmp_path, alg):
    data = yaml.safe_load(SAMPLE.read_text())
    data["jwt"]["algorithm"] = alg
    if alg.startswith("RS"):
        private, public = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif alg.startswith("ES"):
        curve = ec.SECP256R1() if alg == "ES256" else ec.SECP384R1()
        private, public = _pem(ec.generate_private_key(curve))
    else:
        private = public = "a-long-shared-hmac-secret-for-tests-0123456789"
    data["jwt"]["secretKey"], data["jwt"]["publicKey"] = private, public
    config = Config.model_validate(data)
    service = TokenService(config, KeyRing(tmp_path / "jwks.json", 600))
    client = ClientRecord("example-client", "s", ["https://x/cb"])
    token = service.id_token(client, IDENTITY, "nonce-1")
    key_type = {"HS": jwk.OctKey, "RS": jwk.RSAKey, "ES": jwk.ECKey}[alg[:2]]
    key = key_type.import_key(public)
    claims = jwt.decode(token, key, algorithms=[alg]).claims
    assert claims["iss"] == config.jwt.tokenIssuer
    assert claims["sub"] == IDENTITY.did and claims["nonce"] == "nonce-1"
    assert claims["w3n"] == "someone" and claims["pro"] == {"Email": "a@b.c"}
    assert claims["aud"] == config.jwt.accessTokenAudience
    refresh = service.refresh_token(client, IDENTITY)
    assert jwt.decode(refresh.token, key, algorithms=[alg]).claims["aud"] == "authentication"


@pytest.mark.parametrize("secret, alg, standard", [(None, None, True), ("", None, True),
                                                   (None, "ES256", True), ("s", None, False)])
def test_public_clients_always_get_jwks_signed_tokens(tmp_path, secret, alg, standard):
    """A public client holds no secret to check the server-wide HMAC with: it gets the JWKS
    key (RS256 unless it names another), the OIDC issuer and aud = its client id."""
    config = Config.model_validate(yaml.safe_load(SAMPLE.read_text()))
    ring = KeyRing(tmp_path / "jwks.json", 600)
    service = TokenService(config, ring)
    client = ClientRecord("app", secret, ["https://x/cb"], id_token_alg=alg)
    assert client.is_standard is standard
    token = service.id_token(client, IDENTITY, "n")
    if not standard:
        assert jwt.decode(token, jwk.OctKey.import_key(config.jwt.secretKey)).claims["aud"] == (
            config.jwt.accessTokenAudience)
        return
    decoded = jwt.decode(token, ring.verification_keys(), algorithms=[alg or "RS256"])
    assert decoded.header["alg"] == (alg or "RS256")
    assert decoded.claims["aud"] == "app" and decoded.claims["iss"] == config.oidc_issuer
    assert client.allowed_response_types == ("code",)
    assert client.refresh_needs_client_auth

"""One typed configuration object, loaded from OpenDID's `config.yaml` (camelCase) unchanged.

A config error names the file, the key and what is wrong. `production: true` refuses weak or
default secrets. This project's additions are optional: top-level `issuer`, `chainSpec`,
`didLoginMaxTokenLifetime`, `claimMap`, `ssoSessionLifetime`, `store`, `metrics`, `admin`, and
per client `idTokenSignedResponseAlg`, `responseTypes`, `refreshRequiresClientAuth`, `claimMap`
and `postLogoutRedirectUrls`. A client's `checksDirectory` holds CEL login policies
(`login/policies.py`), compiled here; a relative folder is taken from the config file's folder.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from opendid.kilt.chain import resolve_endpoint
from opendid.oidc.claims import DEFAULT_CLAIM_MAP, MAPPABLE_CLAIMS
from opendid.private_files import write_private
from opendid.store.clients import RESPONSE_TYPES, ClientRecord

KNOWN_WEAK_SECRETS = {
    "super-secret-jwt-secret",
    "insecure_client_secret",
    "secret",
    "changeme",
}
SAMPLE_NACL_SECRET = "0x27aa850a5424659706705b9b5d9126e3437274710823a17f8276682c296a7af2"
JWT_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384")
ID_TOKEN_ALGORITHMS = ("RS256", "ES256", "EdDSA")


log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SessionConfig(_Model):
    sessionKey: str = ""
    keyUri: str
    naclSecretKey: str
    naclPublicKey: str
    sessionTtl: int = Field(default=3600, gt=0)


class JwtConfig(_Model):
    tokenIssuer: str
    algorithm: Literal[JWT_ALGORITHMS] = "HS256"  # type: ignore[valid-type]
    secretKey: str
    publicKey: str = ""
    accessTokenLifetime: int = Field(default=60, gt=0)
    accessTokenAudience: str = "application"
    refreshTokenLifetime: int = Field(default=600, gt=0)
    refreshTokenAudience: str = "authentication"


class WellKnownDidConfig(_Model):
    did: str
    keyUri: str
    origin: str
    seed: str


class Requirement(_Model):
    cTypeHash: str
    trustedAttesters: list[str] = Field(default_factory=list)
    requiredProperties: list[str] = Field(default_factory=list)


def check_claim_map(value: dict[str, str] | None) -> dict[str, str] | None:
    """A claim map names standard claims this provider can fill, each from a property."""
    for claim, property_name in (value or {}).items():
        if claim not in MAPPABLE_CLAIMS:
            raise ValueError(f"'{claim}' is not a standard claim that a credential property can "
                             f"fill (one of: {', '.join(MAPPABLE_CLAIMS)})")
        if not property_name:
            raise ValueError(f"'{claim}': name the credential property that fills it")
    return value


class ClientConfig(_Model):
    requirements: list[Requirement] = Field(default_factory=list)
    redirectUrls: list[str] = Field(default_factory=list)
    clientSecret: str | None = None
    checksDirectory: str | None = None
    idTokenSignedResponseAlg: Literal[ID_TOKEN_ALGORITHMS] | None = None  # type: ignore[valid-type]
    # Which response types the client may ask for; None: all three for OpenDID-style
    # confidential clients, ["code"] for standard and public clients.
    responseTypes: list[Literal[RESPONSE_TYPES]] | None = None  # type: ignore[valid-type]
    # Opt in to RFC 6749 §6 for an OpenDID-style client: its refresh tokens only at /token with
    # client authentication, refused at /api/v1/refresh (always so for standard clients).
    refreshRequiresClientAuth: bool = False
    # Standard claim -> credential property for this client (OIDC scopes email, profile);
    # None: the top-level claimMap.
    claimMap: dict[str, str] | None = None

    _claim_map = field_validator("claimMap")(check_claim_map)
    # Where RP-initiated logout may send the user afterwards (`post_logout_redirect_uri`);
    # empty: the client's redirectUrls are accepted.
    postLogoutRedirectUrls: list[str] = Field(default_factory=list)

    @field_validator("responseTypes")
    @classmethod
    def _response_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("list at least one response type, or leave the key out")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each response type once")
        return value

    def record(self, client_id: str) -> ClientRecord:
        """The store's record of this client (config.yaml's or an etcd record's)."""
        return ClientRecord(
            client_id=client_id,
            client_secret=self.clientSecret,
            redirect_urls=list(self.redirectUrls),
            requirements=[r.model_dump() for r in self.requirements],
            id_token_alg=self.idTokenSignedResponseAlg,
            response_types=None if self.responseTypes is None else tuple(self.responseTypes),
            refresh_requires_client_auth=self.refreshRequiresClientAuth,
            post_logout_redirect_urls=list(self.postLogoutRedirectUrls),
            claim_map=self.claimMap,
            checks_directory=self.checksDirectory,
        )


class StoreConfig(_Model):
    # redis://host:6379/0 (or rediss://, unix://): sessions, challenges, codes, tokens and
    # grants in Redis, shared by several instances. Without it: SQLite in the instance folder.
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a Redis URL: redis://host:port/db, rediss://… or unix://…")
        return value


class MetricsConfig(_Model):
    """`/metrics` is served only when this key is present, to a scraper that passes every check
    given here; at least one is required (an open /metrics shows who logs in where, and when)."""

    # Authorization: Bearer <token>; at least 32 visible ASCII characters, no spaces
    token: str | None = None
    # Addresses or networks (CIDR) of the scrapers: the connection's own address (a proxy in
    # front means the proxy's address: use the token then)
    allowFrom: list[str] = Field(default_factory=list)

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9\-._~+/]{32,}=*", value):
            raise ValueError("at least 32 characters of A-Z a-z 0-9 - . _ ~ + / (a bearer "
                             "token), e.g. from: python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'")
        return value

    @field_validator("allowFrom")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an address or network (CIDR)") from None
        return value

    @model_validator(mode="after")
    def _protected(self) -> MetricsConfig:
        if self.token is None and not self.allowFrom:
            raise ValueError("protect /metrics: give a token, allowFrom, or both")
        return self


class EtcdConfig(_Model):
    """The original's `etcd` key: client records are read from `/opendid/clients/<id>` and
    watched. `caCert`, `clientCert` and `clientKey` are PEM file paths (or, as the original
    reads them, the PEM text itself); `domainName` is the name the server certificate must
    carry (default: the endpoint's host)."""

    endpoints: list[str] = Field(min_length=1)
    username: str | None = None
    password: str | None = None
    domainName: str | None = None
    caCert: str | None = None
    clientCert: str | None = None
    clientKey: str | None = None

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        from opendid.store.etcd_clients import parse_endpoint

        for endpoint in value:
            parse_endpoint(endpoint)
        return value

    @property
    def tls(self) -> bool:
        return bool(self.caCert or self.domainName or self.clientCert) or any(
            e.startswith("https://") for e in self.endpoints)


class AdminConfig(_Model):
    # The /admin page for clients: off unless enabled. Admins log in through this provider
    # with a DID on this list (or added with `opendid admin add-did`); any SS58 spelling of a
    # DID is accepted here and normalised.
    enabled: bool = False
    dids: list[str] = Field(default_factory=list)
    # How long an admin session lasts after the wallet login, in seconds (not extended by use).
    sessionLifetime: int = Field(default=900, gt=0, le=86400)

    @field_validator("dids")
    @classmethod
    def _dids(cls, value: list[str]) -> list[str]:
        from opendid.admin.allowlist import normalise_did
        from opendid.kilt.errors import InvalidDid

        try:
            return [normalise_did(did) for did in value]
        except InvalidDid as exc:
            raise ValueError(str(exc)) from None


class Config(_Model):
    host: str = "0.0.0.0"
    port: int = 3001
    production: bool = False
    kiltEndpoint: str
    basePath: str | None = None
    session: SessionConfig
    jwt: JwtConfig
    wellKnownDid: WellKnownDidConfig
    clients: dict[str, ClientConfig] = Field(default_factory=dict)
    etcd: EtcdConfig | None = None
    store: StoreConfig | None = None
    metrics: MetricsConfig | None = None  # absent: no /metrics (404)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    issuer: str | None = None
    displayName: str = "OpenDID"
    # The longest validity (exp - nbf, and exp - now) a DID-only login token may claim, in
    # seconds: a captured token is useless once it expires, so a wallet's token must be short.
    didLoginMaxTokenLifetime: int = Field(default=300, gt=0, le=86400)
    # The default claim map: standard claim -> credential property, e.g. {email: Email}.
    claimMap: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CLAIM_MAP))

    _claim_map = field_validator("claimMap")(check_claim_map)
    # How long (seconds) the provider's login session (single sign-on) lasts after a wallet
    # login; reusing it for another authorization request does not extend it.
    ssoSessionLifetime: int = Field(default=3600, gt=0, le=30 * 86400)

    @field_validator("kiltEndpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        resolve_endpoint(value)
        return value

    @property
    def chain_url(self) -> str:
        return resolve_endpoint(self.kiltEndpoint)

    @property
    def oidc_issuer(self) -> str:
        return (self.issuer or self.wellKnownDid.origin).rstrip("/")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load and check a config file; every problem is a `ConfigError` naming file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_problem(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check(config, path)
    for key in unknown_keys(raw, Config):
        log.warning("%s: unknown key '%s' is ignored (a typo?)", path, key)
    return config


def validation_problem(exc: ValidationError) -> str:
    """Pydantic's first error, named by its key: `key 'a.b': message` (one problem at a time)."""
    err = exc.errors()[0]
    return f"key '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}"


def unknown_keys(raw: Any, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Keys of `raw` that `model` does not know, recursively (for a warning, not an error:
    newer OpenDID configs may carry keys this project does not use)."""
    if not isinstance(raw, dict):
        return []
    found = []
    for key, value in raw.items():
        field = model.model_fields.get(str(key))
        if field is None:
            found.append(prefix + str(key))
            continue
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found += unknown_keys(value, inner, f"{prefix}{key}.")
        elif str(key) == "clients" and isinstance(value, dict):
            for client_id, client in value.items():
                found += unknown_keys(client, ClientConfig, f"clients.{client_id}.")
    return found


def _check(config: Config, path: Path) -> None:
    _check_nacl_pair(config, path)
    if config.etcd:
        _check_etcd(config.etcd, path)
    if config.admin.enabled and "opendid-admin" in config.clients:
        raise ConfigError(f"{path}: key 'clients.opendid-admin': the admin page's own login "
                          "client has this id; name the client otherwise")
    for client_id, client in config.clients.items():
        if client.checksDirectory is not None:
            client.checksDirectory = _check_policies(path, client_id, client.checksDirectory)
        try:
            check_client(client, f"{path}: ", f"clients.{client_id}.", config.production)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if config.jwt.algorithm.startswith(("RS", "ES")) and "PRIVATE KEY" not in config.jwt.secretKey:
        raise ConfigError(
            f"{path}: key 'jwt.secretKey': {config.jwt.algorithm} needs a PEM private key"
        )
    if config.production:
        _check_production(config, path)


def _check_policies(path: Path, client_id: str, value: str) -> str:
    """A client's login policies, compiled now so that a broken file stops start-up; a
    relative folder is taken from the config file's folder. Returns the absolute folder."""
    from opendid.login.policies import PolicyError, policies_for, resolve_directory

    try:
        directory = resolve_directory(value, path.resolve().parent)
        policies_for(directory)
    except PolicyError as exc:
        raise ConfigError(f"{path}: key 'clients.{client_id}.checksDirectory': {exc}") from None
    return str(directory)


def _check_etcd(etcd: EtcdConfig, path: Path) -> None:
    """Pairs come together; TLS settings with an http:// endpoint would send the password in
    clear text to a server that was meant to prove who it is."""
    if (etcd.username is None) != (etcd.password is None):
        raise ConfigError(f"{path}: key 'etcd': give both username and password, or neither")
    if (etcd.clientCert is None) != (etcd.clientKey is None):
        raise ConfigError(f"{path}: key 'etcd': give both clientCert and clientKey, or neither")
    if etcd.tls and any(e.startswith("http://") for e in etcd.endpoints):
        raise ConfigError(f"{path}: key 'etcd.endpoints': an http:// endpoint with TLS settings; "
                          "write https:// or host:port")
    for key in ("caCert", "clientCert", "clientKey"):
        value = getattr(etcd, key)
        if value is not None and "-----BEGIN" not in value and not Path(value).is_file():
            raise ConfigError(f"{path}: key 'etcd.{key}': no such file: {value}")
    if etcd.tls:
        import ssl

        from opendid.store.etcd_clients import tls_context

        try:
            tls_context(etcd)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"{path}: key 'etcd': caCert, clientCert or clientKey is not "
                              f"usable PEM (or the key does not match): {exc}") from None


def _check_nacl_pair(config: Config, path: Path) -> None:
    """The key-agreement pair must match: a wrong public key would fail every login later."""
    from opendid.kilt.crypto import x25519_public_key
    from opendid.kilt.encoding import from_hex
    from opendid.kilt.errors import InvalidHex

    try:
        secret = from_hex(config.session.naclSecretKey.lower(), 32, "naclSecretKey")
        public = from_hex(config.session.naclPublicKey.lower(), 32, "naclPublicKey")
    except InvalidHex as exc:
        raise ConfigError(f"{path}: key 'session': {exc}") from None
    if x25519_public_key(secret) != public:
        raise ConfigError(f"{path}: key 'session.naclPublicKey': does not belong to "
                          "session.naclSecretKey")


def any_attester(requirements: Sequence[Requirement | Mapping[str, Any]],
                 key: str = "") -> list[str]:
    """One problem per requirement whose `trustedAttesters` is empty: it accepts any attester,
    so a credential the user attested with their own DID passes (`key`: the client's prefix)."""
    problems = []
    for index, requirement in enumerate(requirements):
        attesters = requirement.trustedAttesters if isinstance(requirement, Requirement) \
            else requirement.get("trustedAttesters")
        if not attesters:
            problems.append(f"key '{key}requirements.{index}.trustedAttesters' is empty: any "
                            "attester is accepted, so a self-attested credential passes")
    return problems


def weak_client_secret(secret: str | None) -> bool:
    """A default or short client secret (refused with production: true)."""
    return secret is not None and (secret in KNOWN_WEAK_SECRETS or len(secret) < 16)


def check_client(client: ClientConfig, where: str, key: str, production: bool) -> None:
    """What every client defined as data (config.yaml, an etcd record) must pass, beyond its
    types: a ValueError names `where` (the file, the record) and the key (`key`: the client's
    prefix). A requirement that accepts any attester is refused with production: true and a
    warning otherwise."""
    if not client.redirectUrls:
        raise ValueError(f"{where}key '{key}redirectUrls': list at least one")
    for problem in any_attester(client.requirements, key):
        if production:
            raise ValueError(f"{where}{problem}; production: true refuses it: list the DIDs of "
                             "the attesters this client trusts")
        log.warning("%s%s (refused with production: true)", where, problem)


def _check_production(config: Config, path: Path) -> None:
    problems = []
    if config.jwt.algorithm.startswith("HS") and (
        config.jwt.secretKey in KNOWN_WEAK_SECRETS or len(config.jwt.secretKey) < 32
    ):
        problems.append("'jwt.secretKey' is a default or shorter than 32 characters")
    if config.session.naclSecretKey.lower() == SAMPLE_NACL_SECRET:
        problems.append("'session.naclSecretKey' is the public sample key")
    for client_id, client in config.clients.items():
        if weak_client_secret(client.clientSecret):
            problems.append(f"'clients.{client_id}.clientSecret' is a default or too short")
    if problems:
        raise ConfigError(f"{path}: production: true refuses weak secrets: " + "; ".join(problems))


def instance_folder(given: str | os.PathLike[str] | None = None) -> Path:
    """Where state lives: the given folder, $OPENDID_INSTANCE, else `instance/` of the project."""
    chosen = given or os.environ.get("OPENDID_INSTANCE")
    return Path(chosen) if chosen else Path(__file__).resolve().parents[1] / "instance"


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Write a config (it holds secrets: mode 0600, created that way, never world-readable)."""
    write_private(path, yaml.safe_dump(data, sort_keys=False))


def generate_secret(length: int = 32) -> str:
    return secrets.token_urlsafe(length)

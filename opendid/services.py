"""The objects one running service needs, built once per process by the app factory."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from opendid import metrics
from opendid.config import Config
from opendid.kilt.chain import ChainClient
from opendid.kilt.domain_linkage import did_configuration
from opendid.kilt.errors import KiltError
from opendid.login.policies import policies_for
from opendid.login.revalidation import CredentialCheck
from opendid.login.service import LoginService
from opendid.oidc.keys import KeyRing
from opendid.oidc.provider import Provider
from opendid.oidc.sso import SingleSignOn
from opendid.oidc.token_endpoint import TokenEndpoint
from opendid.oidc.tokens import TokenService
from opendid.oidc.userinfo import UserInfo
from opendid.store.client_registry import ClientRegistry
from opendid.store.clients import ClientRecord
from opendid.store.db import Database
from opendid.store.etcd_clients import EtcdClients
from opendid.store.grants import GrantStore
from opendid.store.onetime import OneTimeStore
from opendid.store.redis_grants import RedisGrantStore
from opendid.store.redis_onetime import RedisOneTimeStore
from opendid.store.redis_sso import RedisSsoStore
from opendid.store.sso import SsoStore
from opendid.store.state import open_state

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    chain: ChainClient
    clients: ClientRegistry
    onetime: OneTimeStore | RedisOneTimeStore
    grants: GrantStore | RedisGrantStore
    keyring: KeyRing
    tokens: TokenService
    provider: Provider
    token_endpoint: TokenEndpoint
    userinfo: UserInfo
    login: LoginService
    sso: SsoStore | RedisSsoStore
    single_sign_on: SingleSignOn
    dev: bool
    wallet_path: Path | None
    credentials: CredentialCheck
    redis: Redis | None = None  # the shared state store, when it is Redis
    etcd: EtcdClients | None = None  # clients from etcd, when configured
    _did_configuration: dict[str, object] | None = None

    def warm_up(self) -> None:
        """Connect to the chain in the background, so the first login does not wait for the
        runtime metadata (a request arriving meanwhile waits on the client's lock)."""

        def connect() -> None:
            try:
                self.chain.health()
            except KiltError as exc:
                log.warning("chain not reachable at start-up: %s", exc)

        threading.Thread(target=connect, name="chain-warm-up", daemon=True).start()
        if self.etcd is not None:  # this process's watcher (a forked worker has none yet)
            self.etcd.start()

    def did_configuration(self) -> dict[str, object]:
        """Built once per process (fresh salts), signed with the assertion key."""
        if self._did_configuration is None:
            known = self.config.wellKnownDid
            self._did_configuration = did_configuration(known.did, known.origin, known.keyUri,
                                                        known.seed)
        return self._did_configuration


def compile_policies(client: ClientRecord) -> None:
    """An etcd record's login policies are compiled when it arrives: a broken folder leaves the
    record out (logged) rather than refusing each login later (PolicyError is a ValueError)."""
    if client.checks_directory is not None:
        policies_for(client.checks_directory)


def etcd_clients(config: Config) -> EtcdClients | None:
    """The config's etcd clients (not read yet), checked as the service checks them."""
    return None if config.etcd is None else EtcdClients(
        config.etcd, production=config.production, config_ids=frozenset(config.clients),
        checks=[compile_policies])


def build_services(config: Config, instance: Path, dev: bool = False,
                   chain: ChainClient | None = None, wallet_path: Path | None = None) -> Services:
    db = Database(instance / "opendid.db")
    etcd = etcd_clients(config)
    clients = ClientRegistry(db, etcd)
    for client_id, client in config.clients.items():
        clients.upsert(client.record(client_id))
    lifetime = max(config.jwt.accessTokenLifetime, config.jwt.refreshTokenLifetime)
    keyring = KeyRing(instance / "jwks.json", lifetime)
    chain = chain or ChainClient(config.chain_url, observer=metrics.CHAIN)
    state = open_state(config, db)
    onetime, grants = state.onetime, state.grants
    tokens = TokenService(config, keyring)
    credentials = CredentialCheck(chain)
    return Services(
        config=config, chain=chain, clients=clients, onetime=onetime, grants=grants,
        keyring=keyring, tokens=tokens, provider=Provider(config, clients, grants, tokens),
        token_endpoint=TokenEndpoint(config, clients, grants, tokens, credentials),
        userinfo=UserInfo(grants, clients, config, credentials), credentials=credentials,
        login=LoginService(config, chain, onetime), sso=state.sso,
        single_sign_on=SingleSignOn(keyring, config.oidc_issuer, credentials.still_valid),
        dev=dev, wallet_path=wallet_path, redis=state.redis, etcd=etcd,
    )

"""Where the shared state lives: SQLite (the embedded default) or Redis (several instances).

The state is what every worker and instance must agree on: browser sessions, one-time
challenges, DID-login replay entries, codes, tokens, grants and provider (SSO) sessions.
Clients are not state: they stay in SQLite and the config. The store URL comes from
`$OPENDID_STORE_URL`, else the config's `store.url`; none means SQLite in the instance folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from redis import Redis

from opendid.config import Config
from opendid.store.db import Database
from opendid.store.grants import GrantStore
from opendid.store.onetime import OneTimeStore
from opendid.store.redis_grants import RedisGrantStore
from opendid.store.redis_onetime import RedisOneTimeStore
from opendid.store.redis_sso import RedisSsoStore
from opendid.store.sso import SsoStore

REDIS_TIMEOUT = 2.0  # seconds: an unreachable Redis is a fast 503, not a hung worker
PREFIX = "opendid:"


@dataclass
class State:
    onetime: OneTimeStore | RedisOneTimeStore
    grants: GrantStore | RedisGrantStore
    sso: SsoStore | RedisSsoStore
    redis: Redis | None = None


def store_url(config: Config) -> str | None:
    return os.environ.get("OPENDID_STORE_URL") or (config.store.url if config.store else None)


def redis_client(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                          socket_connect_timeout=REDIS_TIMEOUT, health_check_interval=30)


def open_state(config: Config, db: Database) -> State:
    url = store_url(config)
    if url is None:
        return State(OneTimeStore(db), GrantStore(db), SsoStore(db))
    client = redis_client(url)
    return State(RedisOneTimeStore(client, PREFIX), RedisGrantStore(client, PREFIX),
                 RedisSsoStore(client, PREFIX), client)

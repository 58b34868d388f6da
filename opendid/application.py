"""The Flask application factory: `create_app(config)`; gunicorn uses `wsgi.py`."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask, Response, g

from opendid.config import Config, ConfigError, any_attester, instance_folder, load_config
from opendid.kilt.chain import ChainClient
from opendid.oidc import revocation
from opendid.private_files import ensure_private_file, open_private, tighten_dir
from opendid.services import build_services
from opendid.store.clients import ClientRecord
from opendid.store.housekeeping import PURGE_INTERVAL, Housekeeper
from opendid.store.sessions import SqliteSessionInterface, session_interface
from opendid.web import (
    admin,
    api,
    devwallet,
    errors,
    logout,
    metrics,
    pages,
    request_id,
    tokens,
    wellknown,
)
from opendid.web.cors import init_cors
from opendid.web.jsonbody import BoundedJSONProvider

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 64 * 1024
# authlib logs issued tokens at DEBUG ("Issue token …"): never let that reach the logs
logging.getLogger("authlib").setLevel(logging.INFO)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An inter-process lock: workers start together; one creates and migrates the tables of a
    new database while the others wait."""
    with os.fdopen(open_private(lock_path), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _session_key(config: Config, instance: Path) -> str:
    """`session.sessionKey` (0x + 64 bytes); shorter means "generate one": generated once into
    the instance folder, so that every worker and restart uses the same key."""
    key = config.session.sessionKey
    if key.startswith("0x") and len(key) >= 2 + 128:
        return key
    path = instance / "session.key"
    if not path.exists():
        tmp = instance / f"session.key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("0x" + os.urandom(64).hex())
        with contextlib.suppress(FileExistsError):  # another worker was first: use its key
            os.link(tmp, path)
        tmp.unlink()
    ensure_private_file(path)  # a key an older version left readable by others
    return path.read_text().strip()


def _warn_any_attester(clients: list[ClientRecord]) -> None:
    """Clients added with `opendid clients add` are not in the config that production: true
    checks: a requirement of theirs without trusted attesters accepts self-attested credentials."""
    for client in clients:
        for problem in any_attester(client.requirements):
            logging.getLogger(__name__).warning(
                "PRODUCTION: client %s: %s; re-add it with --trusted-attester", client.client_id,
                problem)


def _purge_interval(given: float | None) -> float:
    if given is not None:
        return given
    raw = os.environ.get("OPENDID_PURGE_INTERVAL")
    if raw is None:
        return PURGE_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"OPENDID_PURGE_INTERVAL: {raw!r} is not a number of seconds >= 0")
    return value


def close_connections(app: Flask) -> None:
    """Close this thread's SQLite connections (they reopen on next use): called in gunicorn's
    master before it forks, since a connection must never be used across a fork."""
    services = app.extensions["opendid"]
    if services.etcd is not None:  # a watcher thread must not cross a fork: workers start theirs
        services.etcd.stop()
    services.clients.db.close()
    if isinstance(app.session_interface, SqliteSessionInterface):
        app.session_interface.close()


class SyncFlask(Flask):
    """Flask for an app with no async views or hooks: Flask asks `inspect` whether each view and
    hook is a coroutine function on every request (eight times per request here)."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


def create_app(config: Config | str | os.PathLike[str] | None = None, *, dev: bool | None = None,
               instance_path: str | os.PathLike[str] | None = None,
               chain: ChainClient | None = None,
               wallet_path: str | os.PathLike[str] | None = None,
               purge_interval: float | None = None) -> Flask:
    """Build the app. `config` is a Config or a path (default: $OPENDID_CONFIG).

    Expired state is purged at most every `purge_interval` seconds per process (default:
    $OPENDID_PURGE_INTERVAL, else 60)."""
    if config is None:
        path = os.environ.get("OPENDID_CONFIG")
        if not path:
            raise ConfigError("no config: pass --config or set OPENDID_CONFIG")
        config = path
    if not isinstance(config, Config):
        config = load_config(config)
    dev = dev if dev is not None else os.environ.get("OPENDID_DEV") == "1"
    if dev and config.production:
        raise ConfigError("dev mode (--dev / OPENDID_DEV=1) is refused with production: true")
    wallet = wallet_path or os.environ.get("OPENDID_WALLET")

    instance = instance_folder(instance_path)
    tighten_dir(instance)
    app = SyncFlask(__name__, instance_path=str(instance.resolve()),
                template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "static"))
    app.json = BoundedJSONProvider(app)  # malformed or too deeply nested bodies are a 400
    app.config.update(
        SECRET_KEY=_session_key(config, instance),
        MAX_CONTENT_LENGTH=MAX_BODY,
        SESSION_PERMANENT=True,
        SESSION_REFRESH_EACH_REQUEST=False,  # written when changed, not on every request
        PERMANENT_SESSION_LIFETIME=config.session.sessionTtl,
        SESSION_COOKIE_NAME="opendid",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.production,
    )
    with _exclusive(instance / "init.lock"):  # workers start together: create tables once
        services = build_services(config, instance, dev=bool(dev), chain=chain,
                                  wallet_path=Path(wallet) if wallet else None)
        sessions = session_interface(app, instance, services.redis)
        app.session_interface = sessions
    if services.etcd is not None:  # read etcd's clients before the first request
        services.etcd.start()
    if config.production:
        _warn_any_attester(services.clients.all())
    services.token_endpoint.init_app(app)
    revocation.register(services.token_endpoint.server, services.grants, services.credentials)
    app.extensions["opendid"] = services
    steps = [services.onetime.purge, services.grants.purge, services.sso.purge]
    if isinstance(sessions, SqliteSessionInterface):  # Redis expires its sessions itself
        steps.append(sessions.purge)
    housekeeper = Housekeeper(steps, interval=_purge_interval(purge_interval))
    app.extensions["opendid-housekeeper"] = housekeeper
    request_id.register(app)  # first: a hook that answers skips the hooks after it

    @app.before_request
    def state_reachable() -> Response | None:
        """The session could not be read (Redis down): a clean 503 before any step runs."""
        return errors.state_store_down() if g.get("state_unavailable") else None

    @app.before_request
    def purge_expired() -> None:
        housekeeper.maybe_run()

    app.register_blueprint(api.bp)
    app.register_blueprint(logout.bp)
    app.register_blueprint(wellknown.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(metrics.bp)
    init_cors(app)
    app.register_blueprint(pages.bp)
    admin.init_app(app, services)  # /admin when admin.enabled; its built-in login client
    if dev:
        app.register_blueprint(devwallet.bp)
    errors.register(app)
    logging.getLogger(__name__).info(
        "OpenDID ready: issuer %s, chain %s, %d clients%s", config.oidc_issuer, config.chain_url,
        len(config.clients), ", DEV MODE" if dev else "")
    return app

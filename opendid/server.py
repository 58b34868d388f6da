"""Running the app under gunicorn from `opendid serve`.

The app is built once in the master before forking (`preload_app`), so workers share its code
and data pages; nothing is connected then: database connections are closed before each fork and
the chain client connects in each worker after it starts. Workers are `gthread` with keep-alive:
a client's next request reuses its connection instead of a new TCP handshake and close.

The access log keeps method, path, status and timing, but never a DID-login token (it is in the
path) nor a redirect's query or fragment (codes, tokens): see `RedactingLogger`.
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from opendid import metrics_files
from opendid.kilt.errors import KiltError
from opendid.redact import RedactingFilter, redact_location

LOGGER_CLASS = "opendid.server.RedactingLogger"
THREADS = 4  # per worker: requests wait on the chain and SQLite, not only on the CPU
KEEPALIVE = 5  # seconds an idle client connection stays open


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with token-bearing values redacted, for any access_log_format.

    An access line is formatted from only the atoms its format names: gunicorn's own logger
    builds every atom (each request and response header, every environ variable) for each
    line, about a tenth of a worker's CPU under load."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.access_format: str = cfg.access_log_format
        for logger in (self.error_log, self.access_log):
            logger.addFilter(RedactingFilter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any],
               request_time: datetime.timedelta) -> None:
        if not self.access_log_enabled:
            return
        try:
            line = self.access_format % LazyAtoms(self, resp, req, environ, request_time)
            self.access_log.info("%s", line)
        except Exception:
            self.error(traceback.format_exc())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: datetime.timedelta) -> dict[str, Any]:
        """A redirect's query and fragment (codes, tokens) cut from `{location}o`; DID-login
        tokens in the path, the referer or any other atom are cut from the formatted line by
        the RedactingFilter, once per line rather than once per atom."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        location = atoms.get("{location}o")
        if isinstance(location, str):
            atoms["{location}o"] = redact_location(location)
        return atoms


class LazyAtoms(dict[str, Any]):
    """gunicorn's atoms (same names, values and quoting as its SafeAtoms), each computed when
    the format asks for it; the common ones directly, any other from the full set."""

    def __init__(self, logger: RedactingLogger, resp: Any, req: Any, environ: dict[str, Any],
                 request_time: datetime.timedelta) -> None:
        super().__init__()
        self.logger, self.resp, self.req, self.environ = logger, resp, req, environ
        self.request_time = request_time
        self.full: dict[str, Any] | None = None

    def __missing__(self, key: str) -> Any:
        name = key.lower() if key.startswith("{") else key
        value = self._common(name)
        if value is None:
            if self.full is None:
                self.full = self.logger.atoms(self.resp, self.req, self.environ,
                                              self.request_time)
            value = self.full.get(name, "-")
        if isinstance(value, str):
            value = value.replace('"', '\\"')
        self[key] = value
        return value

    def _common(self, name: str) -> Any:
        environ, resp = self.environ, self.resp
        if name == "h":
            return environ.get("REMOTE_ADDR", "-")
        if name == "l":
            return "-"
        if name == "u":
            return self.logger._get_user(environ) or "-"
        if name == "t":
            return self.logger.now()
        if name == "r":
            return (f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} "
                    f"{environ['SERVER_PROTOCOL']}")
        if name == "s":
            status = resp.status
            return status.split(None, 1)[0] if isinstance(status, str) else status
        if name == "b":
            sent = getattr(resp, "sent", None)
            return str(sent) if sent is not None else "-"
        if name == "f":
            return environ.get("HTTP_REFERER", "-")
        if name == "a":
            return environ.get("HTTP_USER_AGENT", "-")
        if name == "M":
            return self.request_time // datetime.timedelta(milliseconds=1)
        if name == "D":
            return self.request_time // datetime.timedelta(microseconds=1)
        return None


class OpenDidServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config_path: Path, options: dict[str, Any], dev: bool) -> None:
        self.config_path, self.options, self.dev = config_path, options, dev
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from opendid.application import create_app

        app = create_app(self.config_path, dev=self.dev)
        try:  # decoded once here, the runtime metadata is shared by every worker
            app.extensions["opendid"].chain.load_runtime()
        except KiltError as exc:
            logging.getLogger(__name__).warning("chain not reachable before forking: %s", exc)
        return app


def pre_fork(server: Any, worker: Any) -> None:
    """In the master, before each fork: no SQLite connection may cross a fork, and the
    objects loaded so far are moved out of the garbage collector's reach, so a worker's
    collections do not write to (and so copy) the memory pages it shares with the master."""
    from opendid.application import close_connections

    close_connections(server.app.wsgi())
    metrics_files.forget_process(os.getpid())  # the master's gauges are no worker's state
    gc.freeze()


def post_worker_init(worker: Any) -> None:
    """In each new worker: connect to the chain now, not on the first login."""
    worker.wsgi.extensions["opendid"].warm_up()


def run(config_path: Path, bind: str, workers: int, dev: bool, threads: int = THREADS) -> None:
    metrics_files.prepare()  # before the app (and prometheus_client) is loaded
    OpenDidServer(config_path, {
        "bind": bind, "workers": workers, "accesslog": "-", "timeout": 30,
        "worker_class": "gthread", "threads": threads, "keepalive": KEEPALIVE,
        "preload_app": True, "pre_fork": pre_fork, "post_worker_init": post_worker_init,
        "on_starting": metrics_files.on_starting, "child_exit": metrics_files.child_exit,
        "on_exit": metrics_files.on_exit,
        "logger_class": LOGGER_CLASS,
        "forwarded_allow_ips": "127.0.0.1",
        "control_socket_disable": True,  # a global path under ~/.gunicorn, shared by instances
    }, dev).run()

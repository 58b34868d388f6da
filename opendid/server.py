"""Running the app under gunicorn from `opendid serve`; each worker builds its own app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication


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
        app.extensions["opendid"].warm_up()
        return app


def run(config_path: Path, bind: str, workers: int, dev: bool) -> None:
    OpenDidServer(config_path, {
        "bind": bind, "workers": workers, "accesslog": "-", "timeout": 30,
        "forwarded_allow_ips": "127.0.0.1",
        "control_socket_disable": True,  # a global path under ~/.gunicorn, shared by instances
    }, dev).run()

"""Where gunicorn's workers keep their metric values (prometheus-client's multiprocess mode),
and the master's hooks that look after it.

prometheus_client reads $PROMETHEUS_MULTIPROC_DIR once, when it is first imported, so the
master sets it before it loads the app; and the folder must start empty, or values of an
earlier run would be summed into this one. This module must not import prometheus_client at
its top for that reason.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from opendid.private_files import private_dir

ENV = "PROMETHEUS_MULTIPROC_DIR"
_created: list[Path] = []  # folders this process made, removed when the master exits


def prepare() -> Path:
    """In gunicorn's master, before the app is loaded: $PROMETHEUS_MULTIPROC_DIR if set (made
    0700 if missing, emptied of value files), else a new private temporary folder; named in the
    environment that the workers inherit."""
    if ENV not in os.environ and "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics folder was set: "
                           "the workers' values would not be shared")
    given = os.environ.get(ENV)
    if given and Path(given) not in _created:
        folder = Path(given)
        private_dir(folder)
        for stale in folder.glob("*.db"):
            stale.unlink()
    else:  # mkdtemp: mode 0700 and empty (a config reload starts a fresh folder too)
        folder = Path(tempfile.mkdtemp(prefix="opendid-metrics-"))
        _created.append(folder)
    os.environ[ENV] = str(folder)
    return folder


def forget_process(pid: int) -> None:
    """Drop a process's live gauges from the sum (a dead worker; or the master, which serves
    nothing and would hold a stale value). Its counters stay: they counted real events."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# -- gunicorn server hooks (the master) ---------------------------------------------------------


def on_starting(server: Any) -> None:
    server.log.info("workers' metrics in %s", os.environ.get(ENV))


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges leave /metrics' sum."""
    forget_process(worker.pid)


def on_exit(server: Any) -> None:
    for folder in _created:
        shutil.rmtree(folder, ignore_errors=True)

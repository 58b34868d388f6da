"""Where gunicorn's workers keep their metric values (prometheus-client's multiprocess mode).

prometheus_client reads $PROMETHEUS_MULTIPROC_DIR once, when it is first imported, so the
master sets it before it loads the app; and it empties the folder first, or values of an
earlier run would be summed into this one. This module must not import prometheus_client at
its top for that reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from opendid.private_files import private_dir

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(default: Path) -> Path:
    """In gunicorn's master, before the app is loaded: the folder ($PROMETHEUS_MULTIPROC_DIR if
    set, else `default`) created 0700 and emptied of value files, and named in the environment
    that the workers inherit."""
    if ENV not in os.environ and "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics folder was set: "
                           "the workers' values would not be shared")
    folder = Path(os.environ.get(ENV) or default)
    private_dir(folder)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(folder)
    return folder


def forget_process(pid: int) -> None:
    """Drop a process's live gauges from the sum (a dead worker; or the master, which serves
    nothing and would hold a stale value). Its counters stay: they counted real events."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)

"""`opendid serve` (gunicorn) in a child process, for tests that need real worker processes."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from conftest import OUTPUT
from opendid.devtools.devchain import PROJECT_ROOT


class Gunicorn:
    """`opendid serve` (gunicorn) in a child process, its log read as it comes."""

    def __init__(self, config: Path, instance: Path, port: int, workers: int = 2,
                 **env: str) -> None:
        self.args = [sys.executable, "-m", "opendid.cli", "serve", "--config", str(config),
                     "--port", str(port), "--host", "127.0.0.1", "--workers", str(workers)]
        self.env = dict(os.environ, OPENDID_INSTANCE=str(instance), **env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.worker_count = workers
        self.workers: set[int] = set()
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> Gunicorn:
        OUTPUT.mkdir(exist_ok=True)
        self.process = subprocess.Popen(self.args, cwd=PROJECT_ROOT, env=self.env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read_log, daemon=True).start()
        self.wait_for_log("Listening at: ")  # bound: connections queue from now on
        while len(self.workers) < self.worker_count:
            self.workers.add(int(self.wait_for_log(r"Booting worker with pid: (\d+)").group(1)))
        health = requests.get(self.url + "/api/v1/health", timeout=120)  # waits for a worker
        assert health.status_code == 200, health.text
        return self

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with open(OUTPUT / f"gunicorn-{self.port}.log", "a") as log:
            for line in self.process.stdout:
                log.write(line)
                self._lines.put(line)
        self._lines.put(None)

    def wait_for_log(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            assert line is not None, "gunicorn exited"
            if found := re.search(pattern, line):
                return found

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

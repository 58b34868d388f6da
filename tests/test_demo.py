"""`make demo`'s program (`opendid.devtools.demo`) run for real on the session's dev chain: its
summary box is the last thing it prints, once both sites answer; the servers' start-up lines
go to the log files it names, not to the terminal; Ctrl-C stops everything."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

import requests

from opendid.devtools.devchain import PROJECT_ROOT, free_port


def test_the_summary_comes_last_once_both_sites_answer(chain_url, tmp_path):
    opendid_port, demo_port = free_port(), free_port()
    env = dict(os.environ, OPENDID_CHAIN_URL=chain_url, DEMO_OUT=str(tmp_path),
               OPENDID_PORT=str(opendid_port), DEMO_PORT=str(demo_port), VERBOSE="")
    process = subprocess.Popen([sys.executable, "-m", "opendid.devtools.demo"], cwd=PROJECT_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    printed: list[str] = []
    try:
        while sum(line.startswith("+-") for line in printed) < 2:  # the box's two borders
            line = lines.get(timeout=300)
            assert line is not None, "the demo exited:\n" + "\n".join(printed)
            printed.append(line)
        # the moment the box is complete, both sites answer
        assert requests.get(f"http://127.0.0.1:{demo_port}/", timeout=10).status_code == 200
        health = requests.get(f"http://127.0.0.1:{opendid_port}/api/v1/health", timeout=10)
        assert health.status_code == 200
        box = printed[printed.index(next(line for line in printed if line.startswith("+-"))):]
        text = "\n".join(box)
        assert f"Open  http://localhost:{demo_port}" in text
        assert "Dev wallet" in text and "Ctrl-C stops everything." in text
        assert len(box) <= 14 and all(len(line) <= 100 for line in box)
        # before the box: a few steps of ours, none of the servers' start-up lines
        before = printed[:printed.index(box[0])]
        assert all(line.startswith("  ") or not line for line in before), before
        assert not any("gunicorn" in line.lower() or "Running on" in line for line in printed)
        for log in ("opendid.log", "demo-app.log"):
            assert str(tmp_path / log) in text
        assert "Listening at:" in (tmp_path / "opendid.log").read_text()
        assert "Running on" in (tmp_path / "demo-app.log").read_text()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        rest = []
        while (line := lines.get(timeout=10)) is not None:
            rest.append(line)
        assert rest[-1] == "demo stopped"
        for port in (opendid_port, demo_port):
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                raise AssertionError(f"port {port} still answers after Ctrl-C")
            except requests.ConnectionError:
                pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""The dev chain: chopsticks running the real KILT runtime from a chain spec, offline.

Used by `opendid devchain`, `make demo` and the pytest session fixture. Chain state lives in
memory: every start is a fresh chain.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHOPSTICKS = PROJECT_ROOT / "node_modules" / ".bin" / "chopsticks"
UPSTREAM_CHAIN_SPEC = (
    "https://raw.githubusercontent.com/KILTprotocol/kilt-node/"
    "03f12bbcc3c2541ae91aa0070b11603866637ba9/chainspecs/rilt/peregrine-rilt.json"
)


class DevChainError(RuntimeError):
    """The dev chain could not be installed or started."""


def find_shared() -> Path | None:
    """The development-only `shared` folder (SDK vectors, chain spec): `OPENDID_SHARED`, else
    the nearest `shared/` beside the project root or one of its ancestors (mutation testing
    runs the tests from a copy in `mutants/`). None when absent: the product never needs it."""
    configured = os.environ.get("OPENDID_SHARED")
    if configured:
        return Path(configured)
    for folder in PROJECT_ROOT.parents:
        if (folder / "shared" / "kilt").is_dir():
            return folder / "shared"
    return None


def shared_dir() -> Path:
    """`find_shared()` for the tests, which cannot run without the vectors."""
    found = find_shared()
    if found is None:
        raise FileNotFoundError("no shared/kilt folder beside the project; set OPENDID_SHARED")
    return found


def chain_spec() -> str:
    """`OPENDID_CHAIN_SPEC`, else shared/kilt/peregrine-rilt.json when present, else upstream."""
    configured = os.environ.get("OPENDID_CHAIN_SPEC")
    if configured:
        return configured
    shared = find_shared()
    local = shared / "kilt" / "peregrine-rilt.json" if shared else None
    return str(local) if local and local.exists() else UPSTREAM_CHAIN_SPEC


def ensure_installed() -> None:
    """Install the pinned chopsticks (package.json) when it is missing; npm shows progress."""
    if CHOPSTICKS.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise DevChainError("npm is needed for the dev chain: install Node.js 20+ and npm")
    log.info("installing chopsticks with npm (about a minute the first time)...")
    lock = PROJECT_ROOT / "package-lock.json"
    command = [npm, "ci" if lock.exists() else "install", "--no-audit", "--no-fund"]
    if subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode != 0:
        raise DevChainError("npm could not install chopsticks (see the output above)")


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so that no outgoing connection takes
    it between this check and the server binding it (or re-binding it after a restart)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise DevChainError("no free port found between 20000 and 32000")


class DevChain:
    """A chopsticks process on a local port; `with DevChain() as chain:` starts and stops it."""

    def __init__(self, port: int | None = None, spec: str | None = None,
                 log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.spec = spec or chain_spec()
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> DevChain:
        ensure_installed()
        command = [str(CHOPSTICKS), f"--chain-spec={self.spec}", f"--port={self.port}",
                   "--build-block-mode=Instant"]
        output = open(self.log_file, "wb") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait(timeout)
        self._first_block(timeout)
        log.info("dev chain ready at %s", self.url)
        return self

    def _rpc(self, method: str, params: list[object], timeout: float) -> dict[str, object]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer: dict[str, object] = requests.post(f"http://127.0.0.1:{self.port}", json=body,
                                                  timeout=timeout).json()
        return answer

    def _first_block(self, timeout: float) -> None:
        """Make sure block #1 exists before anyone submits an extrinsic.

        Block #1 is the only one whose time chopsticks takes from the clock (its parent, the
        genesis, stores none), and it reads the clock twice: once for the timestamp, once for
        the relay slot. When a 12 s slot boundary passes between the reads (a loaded machine),
        the runtime panics ("slot number mismatch") and the block, with any extrinsic in it, is
        lost. Every later block takes its time from its parent's. So block #1 is built here,
        empty, until it exists; a second straddle in a row would need another boundary."""
        deadline = time.monotonic() + timeout
        while True:
            header = self._rpc("chain_getHeader", [], timeout=30)["result"]
            if int(str(header["number"]), 16) >= 1:  # type: ignore[index]
                return
            if time.monotonic() > deadline:
                raise DevChainError("chopsticks could not build its first block")
            built = self._rpc("dev_newBlock", [], timeout=60)
            if "error" in built:
                log.info("dev chain: building block #1 failed (%s); building it again",
                         built["error"])

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        http = f"http://127.0.0.1:{self.port}"
        body = {"jsonrpc": "2.0", "id": 1, "method": "system_chain", "params": []}
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise DevChainError(
                    f"chopsticks exited with {self.process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                if requests.post(http, json=body, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise DevChainError(f"chopsticks did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> DevChain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""`make demo`: the whole thing locally: dev chain, provisioning, OpenDID, demo relying party.

Everything runs in this process's children and stops on Ctrl-C. The summary (what to open,
who you are, what to click) is printed last, once both sites answer, so start-up lines never
bury it: the servers log to files under `instance/dev/` unless `VERBOSE=1`.
`OPENDID_CHAIN_URL` runs the demo on a chain that is already running instead of starting one;
`DEMO_OUT` puts its files somewhere else than `instance/dev/`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from opendid.devtools.devchain import PROJECT_ROOT, DevChain
from opendid.devtools.provision import Identities, provision
from opendid.kilt.chain import ChainClient

OPENDID_PORT = int(os.environ.get("OPENDID_PORT", "3001"))
DEMO_PORT = int(os.environ.get("DEMO_PORT", "1606"))
# the dev wallet signs for whoever reaches it: loopback unless OPENDID_HOST says otherwise
OPENDID_HOST = os.environ.get("OPENDID_HOST", "127.0.0.1")
VERBOSE = os.environ.get("VERBOSE", "") not in ("", "0")
READY_TIMEOUT = 180.0  # seconds both sites get to answer (a loaded machine, a cold chain)


@dataclass
class Server:
    """A child server process and the file its output goes to (None: this terminal)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path | None


class DemoError(RuntimeError):
    """A server did not come up; the message says where its log is."""


def main() -> None:
    logging.basicConfig(level=logging.INFO if VERBOSE else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("substrateinterface").setLevel(logging.WARNING)
    out = Path(os.environ.get("DEMO_OUT") or PROJECT_ROOT / "instance" / "dev")
    # Ctrl-C and SIGTERM stop everything, also when started in the background (where a shell
    # hands its children SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    out.mkdir(parents=True, exist_ok=True)
    servers: list[Server] = []
    with ExitStack() as stack:
        try:
            chain_url = os.environ.get("OPENDID_CHAIN_URL")
            if not chain_url:
                chain = DevChain(port=int(os.environ.get("DEVCHAIN_PORT", "9944")),
                                 log_file=out / "chopsticks.log")
                step("starting the dev chain (chopsticks)")
                stack.callback(chain.stop)
                chain.start()
                chain_url = chain.url
            step("creating the demo identities on the dev chain")
            origin = f"http://localhost:{OPENDID_PORT}"
            state = provision(ChainClient(chain_url, timeout=60), out, Identities.fresh(),
                              origin, [f"http://localhost:{DEMO_PORT}/callback",
                                       f"http://localhost:{DEMO_PORT}/callback/implicit"])
            step("starting OpenDID and the demo app")
            servers = start_servers(Path(state["config"]), Path(state["wallet"]), state, out,
                                    stack)
            wait_until_ready(servers, READY_TIMEOUT)
            print(summary(chain_url, state, servers), flush=True)
            while all(server.process.poll() is None for server in servers):
                time.sleep(0.5)
            stopped = next(s for s in servers if s.process.poll() is not None)
            print(f"{stopped.name} stopped{where(stopped)}; shutting down", flush=True)
        except DemoError as exc:
            print(f"demo failed: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)
        except KeyboardInterrupt:
            pass
        finally:
            stop(servers)
    print("demo stopped", flush=True)


def step(text: str) -> None:
    print(f"  {text}...", flush=True)


def where(server: Server) -> str:
    return f" (log: {server.log})" if server.log else ""


def start_servers(config: Path, wallet: Path, state: dict[str, object], out: Path,
                  stack: ExitStack) -> list[Server]:
    """OpenDID in dev mode (with the dev wallet) and the demo relying party."""
    python = sys.executable
    env = dict(os.environ, OPENDID_WALLET=str(wallet))
    client = state["client"]
    assert isinstance(client, dict)
    demo_env = dict(os.environ, DEMO_ISSUER=f"http://localhost:{OPENDID_PORT}",
                    DEMO_CLIENT_ID=str(client["id"]), DEMO_CLIENT_SECRET=str(client["secret"]),
                    DEMO_PORT=str(DEMO_PORT))
    commands = {
        "OpenDID": ([python, "-m", "opendid.cli", "serve", "--config", str(config), "--dev",
                     "--host", OPENDID_HOST, "--port", str(OPENDID_PORT)], env, "opendid.log"),
        "demo app": ([python, "-m", "demo_rp.app"], demo_env, "demo-app.log"),
    }
    servers = []
    for name, (command, child_env, log_name) in commands.items():
        log = None if VERBOSE else out / log_name
        output: IO[bytes] | None = None
        if log is not None:
            output = stack.enter_context(open(log, "wb"))  # noqa: SIM115
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=child_env, stdout=output,
                                   stderr=subprocess.STDOUT if output else None)
        servers.append(Server(name, process, log))
    return servers


def ready_urls() -> dict[str, str]:
    """Each site's page that answers 200 once it can serve a login."""
    return {"OpenDID": f"http://127.0.0.1:{OPENDID_PORT}/api/v1/health",
            "demo app": f"http://127.0.0.1:{DEMO_PORT}/"}


def wait_until_ready(servers: list[Server], timeout: float) -> None:
    """Until every site answers 200; a server that exits, or the timeout, is a DemoError."""
    deadline = time.monotonic() + timeout
    waiting = dict(ready_urls())
    while waiting:
        for server in servers:
            if server.process.poll() is not None:
                raise DemoError(f"{server.name} exited with {server.process.returncode}"
                                f"{where(server)}")
        for name, url in list(waiting.items()):
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    del waiting[name]
            except requests.RequestException:
                pass
        if not waiting:
            return
        if time.monotonic() > deadline:
            logs = ", ".join(f"{s.name}{where(s)}" for s in servers if s.name in waiting)
            raise DemoError(f"no answer within {timeout:.0f}s from {logs}")
        time.sleep(0.3)


def stop(servers: list[Server]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def shown(path: Path) -> str:
    """A path as short as it can be said from the project folder."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def summary(chain_url: str, state: dict[str, object], servers: list[Server]) -> str:
    """The short box printed once everything answers."""
    user = state["user"]
    assert isinstance(user, dict)
    lines = [
        f"Open  http://localhost:{DEMO_PORT}",
        "Click 'Log in (authorization code flow)', then 'Dev wallet', then 'Share'.",
        f"You are {user['web3name']} ({str(user['did'])[:24]}...)",
        "",
        f"OpenDID   http://localhost:{OPENDID_PORT} (dev mode)",
        f"chain     {chain_url}",
    ]
    logs = [shown(s.log) for s in servers if s.log]
    lines += [f"{'logs' if i == 0 else '':<9} {log}" for i, log in enumerate(logs)]
    lines.append("Ctrl-C stops everything.")
    width = max(len(line) for line in lines)
    border = "+" + "-" * (width + 2) + "+"
    return "\n".join(["", border, *(f"| {line:<{width}} |" for line in lines), border])


if __name__ == "__main__":
    main()

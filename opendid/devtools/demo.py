"""`make demo`: the whole thing locally: dev chain, provisioning, OpenDID, demo relying party.

Everything runs in this process's children and stops on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opendid.devtools.devchain import PROJECT_ROOT, DevChain
from opendid.devtools.provision import Identities, provision
from opendid.kilt.chain import ChainClient

OPENDID_PORT = int(os.environ.get("OPENDID_PORT", "3001"))
DEMO_PORT = int(os.environ.get("DEMO_PORT", "1606"))
# the dev wallet signs for whoever reaches it: loopback unless OPENDID_HOST says otherwise
OPENDID_HOST = os.environ.get("OPENDID_HOST", "127.0.0.1")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("substrateinterface").setLevel(logging.WARNING)
    out = PROJECT_ROOT / "instance" / "dev"
    out.mkdir(parents=True, exist_ok=True)
    chain = DevChain(port=int(os.environ.get("DEVCHAIN_PORT", "9944")),
                     log_file=out / "chopsticks.log")
    print("starting the dev chain (chopsticks)...", flush=True)
    chain.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        origin = f"http://localhost:{OPENDID_PORT}"
        state = provision(ChainClient(chain.url), out, Identities.fresh(), origin,
                          [f"http://localhost:{DEMO_PORT}/callback",
                           f"http://localhost:{DEMO_PORT}/callback/implicit"])
        children = start_servers(Path(state["config"]), Path(state["wallet"]), state)
        print_summary(chain.url, state)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a server stopped; shutting down", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)
        chain.stop()
        print("demo stopped", flush=True)


def start_servers(config: Path, wallet: Path, state: dict[str, object]) -> list[
        subprocess.Popen[bytes]]:
    """OpenDID in dev mode (with the dev wallet) and the demo relying party."""
    python = sys.executable
    env = dict(os.environ, OPENDID_WALLET=str(wallet))
    opendid = subprocess.Popen(
        [python, "-m", "opendid.cli", "serve", "--config", str(config), "--dev",
         "--host", OPENDID_HOST, "--port", str(OPENDID_PORT)], cwd=PROJECT_ROOT, env=env)
    client = state["client"]
    assert isinstance(client, dict)
    demo_env = dict(os.environ, DEMO_ISSUER=f"http://localhost:{OPENDID_PORT}",
                    DEMO_CLIENT_ID=str(client["id"]), DEMO_CLIENT_SECRET=str(client["secret"]),
                    DEMO_PORT=str(DEMO_PORT))
    demo = subprocess.Popen([python, "-m", "demo_rp.app"], cwd=PROJECT_ROOT, env=demo_env)
    return [opendid, demo]


def print_summary(chain_url: str, state: dict[str, object]) -> None:
    user = state["user"]
    assert isinstance(user, dict)
    print(
        "\n"
        f"  dev chain      {chain_url}\n"
        f"  OpenDID        http://localhost:{OPENDID_PORT}  (dev mode, Dev wallet enabled)\n"
        f"  demo app       http://localhost:{DEMO_PORT}     <- open this and click 'Log in'\n"
        f"  user DID       {user['did']}  (web3name {user['web3name']})\n"
        f"  config         {state['config']}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )


if __name__ == "__main__":
    main()

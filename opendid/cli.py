"""The `opendid` command: serve, setup, devchain."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

import click
from substrateinterface import Keypair

from opendid.admin.allowlist import AdminList
from opendid.admin.login import ADMIN_CLIENT_ID
from opendid.config import Config, ConfigError, instance_folder, load_config
from opendid.kilt.chain import ChainClient, resolve_endpoint
from opendid.kilt.errors import ChainError, ChainUnavailable, InvalidDid
from opendid.kilt.keys import sr25519_keypair
from opendid.server import THREADS
from opendid.store.clients import RESPONSE_TYPES, ClientRecord, ClientStore, hash_client_secret
from opendid.store.db import Database


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("substrateinterface").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug output.")
def main(verbose: bool) -> None:
    """OpenDID: an OpenID Connect provider that logs people in with their KILT DID."""
    _logging(verbose)


def _load_config(path: Path) -> Config:
    """The config at `path`, or a clear CLI error naming what is wrong in it."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def read_payer(payer_file: Path | None) -> Keypair:
    """The payer's secret from a file, OPENDID_PAYER_MNEMONIC or a hidden prompt, never argv."""
    if payer_file is not None:
        secret = payer_file.read_text().strip()
    elif os.environ.get("OPENDID_PAYER_MNEMONIC"):
        secret = os.environ["OPENDID_PAYER_MNEMONIC"].strip()
    elif sys.stdin.isatty():
        secret = click.prompt("Payer mnemonic", hide_input=True).strip()
    else:
        raise click.UsageError(
            "give the payer's mnemonic with --payer-file or OPENDID_PAYER_MNEMONIC"
        )
    phrase = secret.split("//", 1)[0].strip()
    if not phrase.startswith("0x") and not Keypair.validate_mnemonic(phrase):
        raise click.BadParameter("the payer secret is not a valid BIP39 mnemonic",
                                 param_hint="payer")
    try:
        return sr25519_keypair(secret)
    except ValueError as exc:
        raise click.BadParameter(f"the payer secret is not usable: {exc}",
                                 param_hint="payer") from None


@main.command()
@click.option("--config", "config_path", envvar="OPENDID_CONFIG", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="OpenDID config.yaml (or set OPENDID_CONFIG).")
@click.option("--dev", is_flag=True, envvar="OPENDID_DEV",
              help="Enable the dev wallet and dev-only endpoints (refused in production).")
@click.option("--host", default=None,
              help="Address to bind (default: the config's host; 127.0.0.1 with --dev).")
@click.option("--port", type=int, default=None, help="Port (default: the config's port).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="gunicorn workers.")
@click.option("--threads", type=click.IntRange(min=1), default=THREADS, show_default=True,
              help="Threads per worker.")
def serve(config_path: Path, dev: bool, host: str | None, port: int | None, workers: int,
          threads: int) -> None:
    """Run the OpenID provider under gunicorn.

    With --dev it listens on 127.0.0.1 unless --host says otherwise: the dev wallet signs for
    whoever reaches it.
    """
    from opendid.server import run

    config = _load_config(config_path)
    if dev and config.production:
        raise click.ClickException(f"{config_path}: --dev is refused with production: true")
    if dev:
        os.environ["OPENDID_DEV"] = "1"
    bind = f"{serve_host(config.host, host, dev)}:{port or config.port}"
    click.echo(f"OpenDID on http://{bind} (issuer {config.oidc_issuer}){' [dev]' if dev else ''}")
    run(config_path, bind, workers, dev, threads)


def serve_host(config_host: str, given: str | None, dev: bool) -> str:
    """The address to bind: --host if given; in dev mode loopback (the config's host is the
    original's 0.0.0.0 default more often than a choice); else the config's host."""
    if given:
        return given
    return "127.0.0.1" if dev else config_host


@main.command()
@click.option("--endpoint", default="peregrine", show_default=True,
              help="spiritnet, peregrine or a ws:// URL of a KILT node.")
@click.option("--payer-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the payer account's mnemonic (pays fees and the DID deposit).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("instance"), show_default=True,
              help="Folder for config.yaml and secrets.json.")
@click.option("--origin", default="http://localhost:3001", show_default=True,
              help="Public URL of this service (OIDC issuer, domain linkage origin).")
def setup(endpoint: str, payer_file: Path | None, out_dir: Path, origin: str) -> None:
    """Create the service's DID on chain and write config.yaml plus a secrets file."""
    from opendid.provisioning import setup_service

    try:
        url = resolve_endpoint(endpoint)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    payer = read_payer(payer_file)
    client = ChainClient(url, timeout=10)
    try:
        if client.free_balance(payer.ss58_address) == 0:
            raise click.ClickException(
                f"the payer account {payer.ss58_address} has no funds on {url}: fund it first"
            )
        result = setup_service(client, payer, out_dir, endpoint, origin)
    except ChainUnavailable as exc:
        raise click.ClickException(f"{exc}: check --endpoint and your network") from None
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "created" if result.created else "reused"
    click.echo(f"DID {result.keys.did} {verb}")
    click.echo(f"config:  {result.config_path} (mode 0600)")
    click.echo(f"secrets: {result.secrets_path} (mode 0600; back it up, it restores the DID keys)")


@main.group(invoke_without_command=True)
@click.option("--port", type=int, default=9944, show_default=True, help="Port to listen on.")
@click.option("--spec", default=None,
              help="Chain spec path or URL (default: OPENDID_CHAIN_SPEC or the RILT spec).")
@click.pass_context
def devchain(ctx: click.Context, port: int, spec: str | None) -> None:
    """Run a local KILT dev chain (chopsticks) until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from opendid.devtools.devchain import DevChain, DevChainError

    chain = DevChain(port=port, spec=spec)
    try:
        chain.start()
    except DevChainError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"dev chain running at {chain.url} (Ctrl-C stops it)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        assert chain.process is not None
        chain.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        chain.stop()
        click.echo("dev chain stopped")


@devchain.command("provision")
@click.option("--endpoint", default="ws://127.0.0.1:9944", show_default=True,
              help="ws:// URL of the dev chain.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("instance/dev"), show_default=True,
              help="Folder for config.yaml, wallet.json and state.json.")
@click.option("--origin", default="http://localhost:3001", show_default=True,
              help="Public URL of the OpenDID service.")
@click.option("--redirect-url", "redirect_urls", multiple=True,
              default=["http://localhost:1606/callback",
                       "http://localhost:1606/callback/implicit"], show_default=True,
              help="Redirect URL of the demo client (repeatable).")
def devchain_provision(endpoint: str, out_dir: Path, origin: str,
                       redirect_urls: tuple[str, ...]) -> None:
    """Fund accounts and create DIDs, CType, credentials and a web3name on the dev chain."""
    from opendid.devtools.provision import Identities, provision

    # provisioning waits for blocks; a loaded dev chain can take longer than 10 s per block
    client = ChainClient(endpoint, timeout=60)
    try:
        state = provision(client, out_dir, Identities.fresh(), origin, list(redirect_urls))
    except ChainUnavailable as exc:
        raise click.ClickException(f"{exc}: is `opendid devchain` running?") from None
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    summary = {k: state[k] for k in ("service", "attester", "user", "ctype", "config", "wallet")}
    summary["service"] = state["service"]["did"]
    summary["attester"] = state["attester"]["did"]
    click.echo(json.dumps(summary, indent=2))


@main.group()
def keys() -> None:
    """Manage the JWKS signing keys kept in the instance folder."""


@keys.command("rotate")
@click.option("--config", "config_path", envvar="OPENDID_CONFIG", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="OpenDID config.yaml.")
@click.option("--instance", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Instance folder (default: $OPENDID_INSTANCE or the project's instance/).")
def keys_rotate(config_path: Path, instance: Path | None) -> None:
    """Add new current signing keys; old ones stay published until their tokens expire.

    Running workers pick the new keys up within a few seconds.
    """
    from opendid.oidc.keys import KeyRing

    config = _load_config(config_path)
    lifetime = max(config.jwt.accessTokenLifetime, config.jwt.refreshTokenLifetime)
    ring = KeyRing(instance_folder(instance) / "jwks.json", lifetime)
    ring.rotate()
    kids = ", ".join(k["kid"] for k in ring.public_jwks()["keys"])
    click.echo(f"rotated; published keys: {kids}")


@main.group()
def clients() -> None:
    """Manage registered clients (kept in SQLite in the instance folder).

    Clients named in config.yaml are upserted at every start (the file wins for them);
    clients added here stay until removed here.
    """


def _client_store(instance: Path | None) -> ClientStore:
    return ClientStore(Database(instance_folder(instance) / "opendid.db"))


INSTANCE_OPTION = click.option(
    "--instance", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Instance folder (default: $OPENDID_INSTANCE or the project's instance/).")


@clients.command("list")
@INSTANCE_OPTION
@click.option("--config", "config_path", envvar="OPENDID_CONFIG",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="config.yaml: with an `etcd` key, etcd's clients are listed too.")
def clients_list(instance: Path | None, config_path: Path | None) -> None:
    """List registered clients (and etcd's, given the config that names etcd)."""
    from opendid.services import etcd_clients
    from opendid.store.client_registry import ClientRegistry
    from opendid.store.etcd_clients import WatchEnded

    etcd = etcd_clients(_load_config(config_path)) if config_path is not None else None
    unreachable = None
    if etcd is not None:
        try:
            etcd.read_once()
        except WatchEnded as exc:
            unreachable = str(exc)
    store = ClientRegistry(Database(instance_folder(instance) / "opendid.db"), etcd)
    for client in store.all():
        kind = f"standard ({client.signing_alg})" if client.is_standard else "OpenDID-style"
        access = "confidential" if client.client_secret else "public (PKCE)"
        wants = f"{len(client.requirements)} requirement(s)" if client.requirements else \
            "DID-only login"
        click.echo(f"{client.client_id}: {kind}, {access}, {wants}, "
                   f"source {store.source(client.client_id)}")
        for url in client.redirect_urls:
            click.echo(f"    {url}")
    if unreachable is not None:
        raise click.ClickException(f"etcd not reachable ({unreachable}): its clients are "
                                   "not listed")


@clients.command("add")
@click.argument("client_id")
@click.option("--redirect-url", "redirect_urls", multiple=True, required=True,
              help="Registered redirect URL (repeatable).")
@click.option("--public", is_flag=True, help="No secret; the client must use PKCE.")
@click.option("--id-token-alg", type=click.Choice(["RS256", "ES256", "EdDSA"]), default=None,
              help="Standard OIDC client: ID tokens signed with this JWKS key.")
@click.option("--ctype", default=None, help="Required credential type (CType hash).")
@click.option("--trusted-attester", "attesters", multiple=True,
              help="DID of an attester the client trusts (repeatable).")
@click.option("--property", "properties", multiple=True,
              help="Credential property that must be disclosed (repeatable).")
@click.option("--response-type", "response_types", multiple=True,
              type=click.Choice(RESPONSE_TYPES),
              help="A response type the client may ask for (repeatable; default: all three for "
                   "OpenDID-style confidential clients, code for standard and public ones).")
@click.option("--checks-directory", default=None,
              help="Folder of *.cel login policies (compiled now; stored as an absolute path).")
@INSTANCE_OPTION
def clients_add(client_id: str, redirect_urls: tuple[str, ...], public: bool,
                id_token_alg: str | None, ctype: str | None, attesters: tuple[str, ...],
                properties: tuple[str, ...], response_types: tuple[str, ...],
                checks_directory: str | None, instance: Path | None) -> None:
    """Register a client; prints its generated secret once."""
    from urllib.parse import urlsplit

    from opendid.kilt.dids import parse_full_did
    from opendid.kilt.encoding import from_hex
    from opendid.kilt.errors import KiltError

    store = _client_store(instance)
    if store.source(client_id) == "config":
        raise click.ClickException(f"{client_id} is defined in config.yaml; change it there")
    if client_id == ADMIN_CLIENT_ID:
        raise click.ClickException(f"{client_id} is the admin page's own login client")
    for url in redirect_urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--redirect-url")
    requirements = []
    if ctype is not None:
        try:
            from_hex(ctype, 32, "CType hash")
            for did in attesters:
                parse_full_did(did)
        except KiltError as exc:
            raise click.BadParameter(str(exc)) from None
        requirements.append({"cTypeHash": ctype, "trustedAttesters": list(attesters),
                             "requiredProperties": list(properties)})
        if not attesters:
            click.echo("warning: no --trusted-attester: a credential from ANY attester passes, "
                       "including one the user attested themselves", err=True)
    elif attesters or properties:
        raise click.UsageError("--trusted-attester and --property need --ctype")
    if len(set(response_types)) != len(response_types):
        raise click.BadParameter("each response type once", param_hint="--response-type")
    checks = None if checks_directory is None else _compiled_checks(checks_directory)
    secret = None if public else secrets.token_urlsafe(32)
    stored = None if secret is None else hash_client_secret(secret)  # only the hash is kept
    store.upsert(ClientRecord(client_id, stored, list(redirect_urls), requirements,
                              id_token_alg, response_types=tuple(response_types) or None,
                              checks_directory=checks), source="cli")
    click.echo(f"registered {client_id}")
    if secret:
        click.echo(f"client secret (shown once): {secret}")


def _compiled_checks(value: str) -> str:
    """A client's login policies, compiled now as config.yaml's are, so that a broken file is
    an error here and not a refused login later; the folder as an absolute path (a relative
    one is taken from the working directory)."""
    from opendid.login.policies import PolicyError, policies_for, resolve_directory

    try:
        directory = resolve_directory(value)
        policies_for(directory)
    except PolicyError as exc:
        raise click.BadParameter(str(exc), param_hint="--checks-directory") from None
    return str(directory)


@clients.command("remove")
@click.argument("client_id")
@INSTANCE_OPTION
def clients_remove(client_id: str, instance: Path | None) -> None:
    """Remove a client added with `opendid clients add`."""
    store = _client_store(instance)
    source = store.source(client_id)
    if source is None:
        raise click.ClickException(f"no client {client_id}")
    if source == "config":
        raise click.ClickException(f"{client_id} is defined in config.yaml; remove it there")
    if client_id == ADMIN_CLIENT_ID:
        raise click.ClickException(f"{client_id} is the admin page's own login client")
    store.delete(client_id)
    click.echo(f"removed {client_id}")


@main.group()
def admin() -> None:
    """Who may use the /admin page (with `admin: {enabled: true}` in the config).

    DIDs added here are kept in the instance's SQLite, beside the config's `admin.dids`; a
    running service sees a change at the admin's next request.
    """


def _admin_list(instance: Path | None) -> AdminList:
    return AdminList(Database(instance_folder(instance) / "opendid.db"), [])


@admin.command("add-did")
@click.argument("did")
@INSTANCE_OPTION
def admin_add_did(did: str, instance: Path | None) -> None:
    """Allow DID (a full KILT DID, any SS58 spelling) to log in to /admin."""
    try:
        canonical = _admin_list(instance).add(did)
    except InvalidDid as exc:
        raise click.BadParameter(str(exc), param_hint="DID") from None
    click.echo(f"admin added: {canonical}")


@admin.command("remove-did")
@click.argument("did")
@INSTANCE_OPTION
def admin_remove_did(did: str, instance: Path | None) -> None:
    """Take DID off the admin list (its admin sessions end at their next request)."""
    try:
        removed = _admin_list(instance).remove(did)
    except InvalidDid as exc:
        raise click.BadParameter(str(exc), param_hint="DID") from None
    if not removed:
        raise click.ClickException(f"{did} was not added with add-did (config.yaml's "
                                   "admin.dids are changed there)")
    click.echo("admin removed")


@admin.command("list-dids")
@INSTANCE_OPTION
def admin_list_dids(instance: Path | None) -> None:
    """The DIDs added with add-did (the config's admin.dids are not listed here)."""
    for did in _admin_list(instance).stored():
        click.echo(did)


if __name__ == "__main__":
    main()

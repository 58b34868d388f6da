"""`opendid setup` and `opendid devchain provision` through the real CLI on the dev chain."""

import json
import re
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from opendid.cli import main
from opendid.config import load_config
from opendid.devtools.funding import fund
from opendid.kilt.keys import DidKeys, sr25519_keypair


@pytest.fixture()
def payer_file(tmp_path):
    mnemonic = DidKeys.generate().mnemonic
    path = tmp_path / "payer.txt"
    path.write_text(mnemonic + "\n")
    return path, sr25519_keypair(mnemonic)


def _setup(chain_url, payer_path, out, env=None):
    args = ["setup", "--endpoint", chain_url, "--out", str(out),
            "--origin", "https://login.example.org"]
    if payer_path is not None:
        args += ["--payer-file", str(payer_path)]
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


def payer_secret_forms(mnemonic: str) -> dict[str, re.Pattern[bytes]]:
    """The mnemonic as written, its words in order with any separators (a JSON list, one word a
    line, other case), and the secret key it derives, in hex with or without 0x."""
    words = mnemonic.split()
    in_order = rb"\W+".join(re.escape(word.encode()) for word in words)
    secret = sr25519_keypair(mnemonic).private_key.hex().encode()
    return {"mnemonic": re.compile(re.escape(mnemonic.encode())),
            "mnemonic words in order": re.compile(in_order, re.IGNORECASE),
            "secret key": re.compile(re.escape(secret), re.IGNORECASE)}


def assert_payer_secret_nowhere(mnemonic: str, out: Path, *texts: str) -> None:
    """The payer only pays: its mnemonic ends up in no file `setup` wrote and in no output."""
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written, "setup wrote nothing to scan"
    places = {str(p): p.read_bytes() for p in written}
    places.update({f"output {i}": text.encode() for i, text in enumerate(texts)})
    for name, form in payer_secret_forms(mnemonic).items():
        leaks = [place for place, data in places.items() if form.search(data)]
        assert not leaks, f"the payer's secret ({name}) is in {leaks}"


def test_the_payer_secret_scan_finds_every_form(tmp_path):
    """The scan above must see the secret however a leak would spell it."""
    mnemonic = DidKeys.generate().mnemonic
    spellings = [mnemonic, json.dumps(mnemonic.split()), "\n".join(mnemonic.upper().split()),
                 "0x" + sr25519_keypair(mnemonic).private_key.hex()]
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "config.yaml").write_text("issuer: x\n")
    assert_payer_secret_nowhere(mnemonic, clean, "DID created")
    for index, spelled in enumerate(spellings):
        folder = tmp_path / str(index)
        (folder / "nested").mkdir(parents=True)
        (folder / "config.yaml").write_text("issuer: x\n")
        (folder / "nested" / "leak.txt").write_text(f"k: {spelled}\n")
        with pytest.raises(AssertionError, match="payer's secret"):
            assert_payer_secret_nowhere(mnemonic, folder)
        with pytest.raises(AssertionError, match="payer's secret"):
            assert_payer_secret_nowhere(mnemonic, clean, f"log: {spelled}")


def test_setup_creates_the_did_and_writes_a_loadable_config(chain, chain_url, payer_file,
                                                            tmp_path, caplog):
    path, payer = payer_file
    fund(chain, payer.ss58_address)
    out = tmp_path / "svc"
    result = _setup(chain_url, path, out)
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    config = load_config(out / "config.yaml")
    document = chain.did(config.wellKnownDid.did)
    assert document is not None
    assert config.session.keyUri.endswith(document.key_agreement[0].id.hex())
    assert config.wellKnownDid.keyUri.endswith(document.assertion_method.id.hex())
    assert config.oidc_issuer == "https://login.example.org"
    for name in ("config.yaml", "secrets.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    assert_payer_secret_nowhere(path.read_text().strip(), out, result.output, caplog.text)

    again = _setup(chain_url, path, out)
    assert again.exit_code == 0, again.output
    assert "reused" in again.output
    assert_payer_secret_nowhere(path.read_text().strip(), out, again.output, caplog.text)
    assert yaml.safe_load((out / "config.yaml").read_text())["wellKnownDid"]["did"] == (
        config.wellKnownDid.did)


def test_setup_reads_the_payer_from_the_environment(chain, chain_url, tmp_path, caplog):
    mnemonic = DidKeys.generate().mnemonic
    fund(chain, sr25519_keypair(mnemonic).ss58_address)
    result = _setup(chain_url, None, tmp_path / "env", env={"OPENDID_PAYER_MNEMONIC": mnemonic})
    assert result.exit_code == 0, result.output
    assert_payer_secret_nowhere(mnemonic, tmp_path / "env", result.output, caplog.text)


def test_setup_refuses_an_unfunded_payer(chain_url, payer_file, tmp_path):
    path, payer = payer_file
    result = _setup(chain_url, path, tmp_path / "unfunded")
    assert result.exit_code != 0
    assert "no funds" in result.output and payer.ss58_address in result.output
    assert not (tmp_path / "unfunded" / "config.yaml").exists()


def test_setup_refuses_a_bad_mnemonic(chain_url, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("not a mnemonic at all")
    result = _setup(chain_url, path, tmp_path / "bad")
    assert result.exit_code != 0
    assert "not a valid BIP39 mnemonic" in result.output


def test_setup_reports_an_unreachable_endpoint(payer_file, tmp_path):
    path, _ = payer_file
    result = _setup("ws://127.0.0.1:9", path, tmp_path / "down")
    assert result.exit_code != 0
    assert "unreachable" in result.output


def test_setup_without_payer_and_without_tty_explains(chain_url, tmp_path):
    result = _setup(chain_url, None, tmp_path / "none")
    assert result.exit_code != 0
    assert "--payer-file" in result.output


def test_devchain_provision_command_writes_wallet_and_config(chain, chain_url, tmp_path):
    out = tmp_path / "dev"
    result = CliRunner().invoke(main, ["devchain", "provision", "--endpoint", chain_url,
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = load_config(out / "config.yaml")
    assert "demo-client" in config.clients
    assert (out / "wallet.json").exists() and (out / "state.json").exists()


@pytest.mark.parametrize("command", [
    [], ["setup"], ["serve"], ["devchain"], ["devchain", "provision"], ["keys", "rotate"],
    ["clients"], ["clients", "add"], ["clients", "list"], ["clients", "remove"],
])
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_devchain_command_starts_answers_and_stops_on_ctrl_c():
    import signal
    import subprocess
    import sys
    import time

    import requests

    from opendid.devtools.devchain import PROJECT_ROOT, free_port
    port = free_port()
    # Ctrl-C as in a terminal: a suite started in the background (`make test &`, CI) passes on
    # an ignored SIGINT, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen([sys.executable, "-m", "opendid.cli", "devchain", "--port",
                                str(port)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "dev chain running" not in line:
            assert time.monotonic() < deadline and process.poll() is None
            line = process.stdout.readline()
        body = {"jsonrpc": "2.0", "id": 1, "method": "system_chain", "params": []}
        assert requests.post(f"http://127.0.0.1:{port}", json=body, timeout=5).ok
        process.send_signal(signal.SIGINT)
        assert "dev chain stopped" in process.communicate(timeout=60)[0]
        assert process.returncode == 0
        try:
            requests.post(f"http://127.0.0.1:{port}", json=body, timeout=2)
            raise AssertionError("chopsticks still answers after Ctrl-C")
        except requests.ConnectionError:
            pass
    finally:
        if process.poll() is None:
            process.kill()


# -- clients add: only a hash is stored; serve --dev binds to loopback ----------------------------


def test_clients_add_stores_only_a_hash_and_the_secret_authenticates(opendid, driver):
    from conftest import OPENDID_REDIRECT

    provisioned = opendid.provisioned
    added = CliRunner().invoke(main, [
        "clients", "add", "hashed-client", "--redirect-url", OPENDID_REDIRECT,
        "--ctype", provisioned["ctype"], "--trusted-attester", provisioned["attester"]["did"],
        "--property", "Email", "--instance", str(opendid.instance)])
    assert added.exit_code == 0, added.output
    secret = added.output.split("(shown once): ")[1].strip()
    assert added.output.count(secret) == 1
    for path in opendid.instance.rglob("*"):  # the database and its WAL hold no trace of it
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    stored = opendid.services.clients.get("hashed-client").client_secret
    code = driver.login(client_id="hashed-client", redirect_uri=OPENDID_REDIRECT,
                        response_type="code", scope="openid", state="s", nonce="n")["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": OPENDID_REDIRECT,
            "client_id": "hashed-client"}
    for wrong in (secret[:-1], secret + "x", stored, secret.upper(), ""):
        refused = driver.token(**form, client_secret=wrong)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client", wrong
    response = driver.token(**form, client_secret=secret)
    assert response.status_code == 200, response.text
    assert "access_token" in response.json()


def test_clients_add_without_trusted_attester_warns(tmp_path):
    result = CliRunner().invoke(main, [
        "clients", "add", "lax", "--redirect-url", "https://lax.example/cb",
        "--ctype", "0x" + "11" * 32, "--instance", str(tmp_path / "instance")])
    assert result.exit_code == 0 and "ANY attester" in result.output


@pytest.mark.parametrize("config_host, given, dev, bound", [
    ("0.0.0.0", None, True, "127.0.0.1"),  # dev: loopback, whatever the config says
    ("0.0.0.0", "0.0.0.0", True, "0.0.0.0"),  # unless --host says otherwise
    ("0.0.0.0", None, False, "0.0.0.0"),  # not dev: the config's host
    ("10.0.0.5", "127.0.0.1", False, "127.0.0.1"),
])
def test_serve_binds_dev_mode_to_loopback_unless_told_otherwise(config_host, given, dev, bound):
    from opendid.cli import serve_host
    assert serve_host(config_host, given, dev) == bound

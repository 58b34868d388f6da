"""The deployment examples in deploy/, tested rather than only written (docs/deploy.md).

The systemd unit is read as systemd reads it and, where systemd-analyze exists, verified by it.
The nginx example passes `nginx -t`, then a real nginx (Debian's) with a self-signed
certificate runs in front of a real gunicorn started with the unit's own command line and a
`production: true` config with an https issuer, and a complete login goes through it over
https: discovery names https URLs, every cookie is Secure, every redirect stays on https.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import SECRET, STANDARD_REDIRECT, extra_clients
from opendid.cli import main
from opendid.devtools.devchain import PROJECT_ROOT, free_port
from opendid.devtools.funding import fund
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims, pkce_pair
from opendid.devtools.wallet import Wallet
from opendid.kilt.chain import ChainClient
from opendid.kilt.keys import DidKeys, sr25519_keypair
from tests.gunicorn_server import Gunicorn

DEPLOY = PROJECT_ROOT / "deploy"
UNIT = DEPLOY / "opendid.service"
NGINX_SITE = DEPLOY / "nginx" / "opendid.conf"
DOMAIN = "login.example.org"
UPSTREAM = "127.0.0.1:3001"  # where the unit makes OpenDID listen and nginx proxies to


# -- the systemd unit ------------------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) in file order, as systemd reads them (keys may repeat)."""
    entries, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_value(entries: list[tuple[str, str, str]], section: str, key: str) -> str:
    values = [v for s, k, v in entries if (s, k) == (section, key)]
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def unit_environment(entries: list[tuple[str, str, str]]) -> dict[str, str]:
    pairs = [v.split("=", 1) for s, k, v in entries if (s, k) == ("Service", "Environment")]
    return {name: value for name, value in pairs}


def serve_args(entries: list[tuple[str, str, str]]) -> list[str]:
    """ExecStart's arguments after the `opendid` program."""
    program, *args = shlex.split(unit_value(entries, "Service", "ExecStart"))
    assert Path(program).name == "opendid" and args[0] == "serve", program
    return args


def option(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} in {args}"
    return args[args.index(name) + 1]


def test_the_unit_runs_opendid_as_its_own_user_on_loopback_and_restarts():
    entries = unit_entries(UNIT.read_text())
    service = {k for s, k, _ in entries if s == "Service"}
    user = unit_value(entries, "Service", "User")
    assert user not in ("root", "0", "") and unit_value(entries, "Service", "Group") == user
    assert "DynamicUser" not in service  # the instance folder outlives the unit: a fixed owner
    assert unit_value(entries, "Service", "Restart") == "on-failure"
    assert unit_value(entries, "Service", "UMask") == "0077"
    assert unit_value(entries, "Install", "WantedBy") == "multi-user.target"
    # the state folder: systemd creates it owned by User=; it is OPENDID_INSTANCE and holds
    # the config; with ProtectSystem=strict it is the only place the service may write
    state = "/var/lib/" + unit_value(entries, "Service", "StateDirectory")
    assert unit_value(entries, "Service", "StateDirectoryMode") == "0700"
    env = unit_environment(entries)
    assert env["OPENDID_INSTANCE"] == state
    assert Path(env["OPENDID_CONFIG"]).parent == Path(state)
    assert unit_value(entries, "Service", "ProtectSystem") == "strict"
    assert unit_value(entries, "Service", "NoNewPrivileges") == "yes"
    # gunicorn reports READY=1 itself; loopback only, where nginx proxies to
    assert unit_value(entries, "Service", "Type") == "notify"
    args = serve_args(entries)
    assert f"{option(args, '--host')}:{option(args, '--port')}" == UPSTREAM
    assert int(option(args, "--workers")) >= 2
    assert f"proxy_pass http://{UPSTREAM};" in NGINX_SITE.read_text()
    assert f"reverse_proxy {UPSTREAM}" in (DEPLOY / "Caddyfile").read_text()


def test_the_unit_reader_sees_what_systemd_sees():
    """The reader above must not pass a unit systemd would read differently."""
    text = "[Service]\n# User=root\nUser=opendid\nEnvironment=A=1\nEnvironment=B=x=y\n"
    entries = unit_entries(text)
    assert unit_value(entries, "Service", "User") == "opendid"
    assert unit_environment(entries) == {"A": "1", "B": "x=y"}
    with pytest.raises(AssertionError):
        unit_value(unit_entries(text + "User=root\n"), "Service", "User")
    with pytest.raises(AssertionError):
        unit_entries("[Service]\nExecStart /bin/true\n")


def systemd_analyze() -> str | None:
    """systemd-analyze when it is installed and runs here (containers may lack it)."""
    found = shutil.which("systemd-analyze")
    if found is None:
        return None
    probe = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    return found if probe.returncode == 0 else None


def test_systemd_analyze_verify_finds_nothing_in_the_units(tmp_path):
    """Every unit in deploy/, with the venv's opendid where the example has /opt/opendid's:
    systemd-analyze reports no problem. Without systemd-analyze, each unit's every line is
    still a section, a comment or a key=value in a known section."""
    units = sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer"))
    assert {p.name for p in units} >= {"opendid.service", "opendid-keys-rotate.service",
                                       "opendid-keys-rotate.timer"}
    opendid = Path(sys.executable).with_name("opendid")
    for unit in units:
        entries = unit_entries(unit.read_text())
        assert {s for s, _, _ in entries} <= {"Unit", "Service", "Timer", "Install"}
        assert unit_value(entries, "Unit", "Description")
        text = unit.read_text()
        if unit.suffix == ".service":
            assert "/opt/opendid/.venv/bin/opendid " in text
            text = text.replace("/opt/opendid/.venv/bin/opendid", str(opendid))
        (tmp_path / unit.name).write_text(text)
    analyze = systemd_analyze()
    if analyze is None:
        return
    assert opendid.exists(), "the venv has no opendid script: pip install -e ."
    result = subprocess.run([analyze, "verify", *(str(tmp_path / u.name) for u in units)],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if str(tmp_path) in line or "opendid" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_systemd_analyze_verify_would_see_a_broken_unit(tmp_path):
    """The check above reaches systemd: a misspelt value is reported."""
    analyze = systemd_analyze()
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=on-failur")
    assert broken != UNIT.read_text()
    if analyze is None:
        assert unit_value(unit_entries(broken), "Service", "Restart") != "on-failure"
        return
    broken = broken.replace("/opt/opendid/.venv/bin/opendid", sys.executable)
    (tmp_path / "opendid.service").write_text(broken)
    result = subprocess.run([analyze, "verify", str(tmp_path / "opendid.service")],
                            capture_output=True, text=True, check=False)
    assert "on-failur" in result.stdout + result.stderr


# -- nginx -------------------------------------------------------------------------------------


def replace_each(text: str, replacements: dict[str, str]) -> str:
    """Replace strings the example must contain (a renamed one fails here, not silently)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in the example"
        text = text.replace(old, new)
    return text


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, made for this test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_site(folder: Path, http_port: int, https_port: int, upstream: str) -> Path:
    """The example site with this test's ports, certificate and upstream; IPv4 only."""
    cert, key = self_signed(folder)
    site = replace_each(NGINX_SITE.read_text(), {
        "listen [::]:80;": "",
        "listen [::]:443 ssl;": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        f"server_name {DOMAIN};": "server_name localhost;",
        f"/etc/letsencrypt/live/{DOMAIN}/fullchain.pem": str(cert),
        f"/etc/letsencrypt/live/{DOMAIN}/privkey.pem": str(key),
        f"proxy_pass http://{UPSTREAM};": f"proxy_pass http://{upstream};",
        "root /var/www/letsencrypt;": f"root {folder};",
    })
    path = folder / "opendid.conf"
    path.write_text(site)
    return path


def nginx_main_config(folder: Path, site: Path) -> Path:
    """What /etc/nginx/nginx.conf gives the site, with every path in the test's folder."""
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / temp).mkdir(exist_ok=True)
    # as root, nginx's workers run as `nobody`, who cannot enter pytest's 0700 folders
    user = "user root;" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(f"""{user}
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
""")
    return conf


def nginx_command(conf: Path) -> list[str]:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(found).exists(), "nginx is not installed: `make debs` installs it"
    return [found, "-e", "stderr", "-p", str(conf.parent), "-c", str(conf)]


def test_nginx_accepts_the_example(tmp_path):
    site = nginx_site(tmp_path, free_port(), free_port(), "127.0.0.1:9")
    result = subprocess.run([*nginx_command(nginx_main_config(tmp_path, site)), "-t"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_t_rejects_a_broken_example(tmp_path):
    """`nginx -t` above reads the site: a broken directive in it fails."""
    site = nginx_site(tmp_path, free_port(), free_port(), "127.0.0.1:9")
    site.write_text(site.read_text().replace("proxy_set_header Host $host;",
                                             "proxy_set_header Host;"))
    result = subprocess.run([*nginx_command(nginx_main_config(tmp_path, site)), "-t"],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "proxy_set_header" in result.stderr


@contextmanager
def running_nginx(conf: Path) -> Iterator[None]:
    """nginx in the foreground; ready once its pid file exists: nginx writes it after it has
    bound and listens on every port, so connections queue from then on."""
    pid_file = conf.parent / "nginx.pid"
    process = subprocess.Popen(nginx_command(conf), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        while not pid_file.exists():
            if process.poll() is not None:
                raise AssertionError(f"nginx exited: {process.communicate()[0]}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def setup_as_documented(chain: ChainClient, folder: Path, origin: str) -> Path:
    """`opendid setup` with a funded payer of its own, as docs/deploy.md says: a fresh
    service DID and its own key-agreement key (production refuses the sample one)."""
    payer = DidKeys.generate().mnemonic
    fund(chain, sr25519_keypair(payer).ss58_address)
    (folder / "payer.txt").write_text(payer + "\n")
    result = CliRunner().invoke(main, [
        "setup", "--endpoint", chain.url, "--payer-file", str(folder / "payer.txt"),
        "--out", str(folder / "instance"), "--origin", origin], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (folder / "payer.txt").unlink()
    return folder / "instance" / "config.yaml"


@pytest.fixture(scope="module")
def behind_tls(provisioned: dict[str, Any], chain: ChainClient,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """gunicorn as the unit starts it (production, https issuer) behind the nginx example."""
    folder = tmp_path_factory.mktemp("tls")
    http_port, https_port, app_port = free_port(), free_port(), free_port()
    issuer = f"https://localhost:{https_port}"
    config = setup_as_documented(chain, folder, issuer)
    data = yaml.safe_load(config.read_text())
    data.update(production=True, issuer=issuer,
                clients={"standard-client": extra_clients(provisioned, [])["standard-client"]})
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    entries = unit_entries(UNIT.read_text())
    args = serve_args(entries)
    args[args.index("--port") + 1] = str(app_port)
    instance = folder / "instance"
    env = unit_environment(entries)
    assert set(env) == {"OPENDID_CONFIG", "OPENDID_INSTANCE"}
    env["OPENDID_CONFIG"] = str(config)  # OPENDID_INSTANCE: the helper sets it to `instance`
    del env["OPENDID_INSTANCE"]
    server = Gunicorn(config, instance, app_port, workers=int(option(args, "--workers")), **env)
    server.args = [sys.executable, "-m", "opendid.cli", *args]  # the unit's command line
    server.start()
    site = nginx_site(folder, http_port, https_port, f"127.0.0.1:{app_port}")
    cert = folder / "cert.pem"
    try:
        with running_nginx(nginx_main_config(folder, site)):
            yield {"url": issuer, "http_url": f"http://localhost:{http_port}", "cert": cert}
    finally:
        server.stop()


def test_a_complete_login_over_https_through_nginx(behind_tls, provisioned, chain):
    url, cert = behind_tls["url"], str(behind_tls["cert"])
    seen: list[requests.Response] = []
    driver = LoginDriver(url, Wallet.load(provisioned["wallet"]), chain)
    driver.http.verify = cert
    driver.http.trust_env = False  # REQUESTS_CA_BUNDLE would win over `verify`
    driver.http.hooks["response"].append(lambda response, **_: seen.append(response))
    try:
        discovery = driver.http.get(url + "/.well-known/openid-configuration", timeout=30)
        assert discovery.status_code == 200
        doc = discovery.json()
        assert doc["issuer"] == url
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
            assert doc[key].startswith(url + "/"), (key, doc[key])
        verifier, challenge = pkce_pair()
        params = driver.login(client_id="standard-client", redirect_uri=STANDARD_REDIRECT,
                              response_type="code", scope="openid", state="s", nonce="n",
                              code_challenge=challenge, code_challenge_method="S256")
        assert params["state"] == "s"
        basic = base64.b64encode(f"standard-client:{SECRET}".encode()).decode()
        form = {"grant_type": "authorization_code", "code": params["code"],
                "code_verifier": verifier, "redirect_uri": STANDARD_REDIRECT}
        tokens = driver.http.post(doc["token_endpoint"], data=form, timeout=30,
                                  headers={"Authorization": f"Basic {basic}"})
        assert tokens.status_code == 200, tokens.text
        claims = decode_jwt_claims(tokens.json()["id_token"])
        assert claims["iss"] == url and claims["sub"] == provisioned["user"]["did"]
        userinfo = driver.http.get(doc["userinfo_endpoint"], timeout=30, headers={
            "Authorization": "Bearer " + tokens.json()["access_token"]})
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims["sub"]
        linkage = driver.http.get(url + "/.well-known/did-configuration.json", timeout=30)
        assert linkage.status_code == 200
    finally:
        driver.http.close()
    assert all(r.url.startswith(url + "/") for r in seen)
    # every cookie OpenDID set (login session, single sign-on) is Secure
    cookies = [c for r in seen for c in r.raw.headers.getlist("Set-Cookie")]
    assert {c.split("=", 1)[0] for c in cookies} >= {"opendid", "opendid_sso"}
    assert all("; Secure" in c for c in cookies), cookies
    # every redirect that stays with OpenDID stays on https; the last one is the client's
    locations = [urljoin(r.url, r.headers["Location"]) for r in seen if "Location" in r.headers]
    assert locations and locations[-1].startswith(STANDARD_REDIRECT)
    own = [loc for loc in locations if urlsplit(loc).hostname == "localhost"]
    assert own and all(loc.startswith(url + "/") for loc in own), own
    assert all(r.headers.get("Strict-Transport-Security") for r in seen)


def test_plain_http_is_sent_to_https(behind_tls):
    answer = requests.get(behind_tls["http_url"] + "/.well-known/openid-configuration?x=1",
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 301
    assert answer.headers["Location"] == "https://localhost/.well-known/openid-configuration?x=1"


"""OpenDID's config.yaml loads unchanged; errors name file, key and problem; strict production."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from opendid.cli import main
from opendid.config import ConfigError, load_config
from opendid.devtools.devchain import shared_dir
from opendid.kilt.crypto import x25519_public_key
from opendid.store.clients import client_secret_matches

SAMPLE = shared_dir() / "docs" / "config-sample.yaml"


def sample() -> dict:
    return yaml.safe_load(SAMPLE.read_text())


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_sample_config_loads_unchanged():
    config = load_config(SAMPLE)
    assert config.port == 3001 and config.kiltEndpoint == "ws://127.0.0.1:9944"
    assert config.session.sessionTtl == 3600
    assert config.jwt.algorithm == "HS256"
    assert config.clients["example-client"].requirements[0].requiredProperties == ["Email"]
    assert config.oidc_issuer == "http://localhost:3001"  # defaults to wellKnownDid.origin


@pytest.mark.parametrize("endpoint, url", [("spiritnet", "wss://spiritnet.kilt.io:443"),
                                           ("peregrine", "wss://peregrine.kilt.io:443/")])
def test_named_endpoints(tmp_path, endpoint, url):
    data = sample()
    data["kiltEndpoint"] = endpoint
    assert load_config(write(tmp_path, data)).chain_url == url


@pytest.mark.parametrize("mutate, where, what", [
    (lambda d: d["session"].pop("keyUri"), "session.keyUri", "required"),
    (lambda d: d["jwt"].update(algorithm="none"), "jwt.algorithm", ""),
    (lambda d: d["session"].update(sessionTtl="soon"), "session.sessionTtl", "integer"),
    (lambda d: d.update(kiltEndpoint="http://x"), "kiltEndpoint", "ws://"),
    (lambda d: d["clients"]["example-client"].update(redirectUrls=[]),
     "clients.example-client.redirectUrls", "at least one"),
    (lambda d: d["clients"]["example-client"].update(checksDirectory="/checks"),
     "checksDirectory", "no such folder"),
    (lambda d: d.update(etcd={"endpoints": ["etcd"]}), "etcd.endpoints", "host:port"),
    (lambda d: d["jwt"].update(algorithm="RS256"), "jwt.secretKey", "PEM"),
    (lambda d: d["session"].update(naclPublicKey="0x" + "11" * 32), "session.naclPublicKey",
     "does not belong"),
    (lambda d: d["session"].update(naclSecretKey="0x12"), "session", "32 bytes"),
])
def test_config_errors_name_file_key_and_problem(tmp_path, mutate, where, what):
    data = sample()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and where in message and what in message


def test_unreadable_or_non_mapping_config(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    bad.write_text("key: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(bad)


def test_production_refuses_weak_and_sample_secrets(tmp_path):
    data = sample()
    data["production"] = True
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    message = str(info.value)
    assert "jwt.secretKey" in message and "naclSecretKey" in message
    assert "clients.example-client.clientSecret" in message


def test_serve_reports_config_errors_and_refuses_dev_in_production(tmp_path):
    data = sample()
    data["session"].pop("keyUri")
    result = CliRunner().invoke(main, ["serve", "--config", str(write(tmp_path, data))])
    assert result.exit_code != 0 and "session.keyUri" in result.output
    data = production_sample()
    path = write(tmp_path, data)
    load_config(path)  # strong enough for production
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--dev"])
    assert result.exit_code != 0 and "refused with production: true" in result.output


def test_create_app_refuses_dev_mode_in_production(tmp_path):
    from opendid.application import create_app
    data = production_sample()
    with pytest.raises(ConfigError, match="dev mode"):
        create_app(write(tmp_path, data), dev=True, instance_path=tmp_path / "i")


def test_clients_are_kept_in_sqlite_and_the_file_wins_for_its_clients(tmp_path):
    from opendid.application import create_app
    from opendid.store.clients import ClientRecord
    path = write(tmp_path, sample())
    app = create_app(path, instance_path=tmp_path / "instance")
    store = app.extensions["opendid"].clients
    store.upsert(ClientRecord("added-later", "s" * 20, ["https://a.example/cb"]), source="admin")
    data = sample()
    data["clients"]["example-client"]["redirectUrls"] = ["https://changed.example/cb"]
    app = create_app(write(tmp_path, data), instance_path=tmp_path / "instance")
    store = app.extensions["opendid"].clients
    assert store.get("added-later") is not None
    assert store.get("example-client").redirect_urls == ["https://changed.example/cb"]


def test_wsgi_entry_point_builds_the_app_from_opendid_config(tmp_path, monkeypatch):
    import importlib
    import sys
    monkeypatch.setenv("OPENDID_CONFIG", str(SAMPLE))
    monkeypatch.setenv("OPENDID_INSTANCE", str(tmp_path / "instance"))
    sys.modules.pop("wsgi", None)
    wsgi = importlib.import_module("wsgi")
    response = wsgi.app.test_client().get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json["issuer"] == "http://localhost:3001"
    monkeypatch.delenv("OPENDID_CONFIG")
    sys.modules.pop("wsgi", None)
    with pytest.raises(ConfigError, match="OPENDID_CONFIG"):
        importlib.import_module("wsgi")


def test_a_short_session_key_is_generated_once_and_kept(tmp_path):
    from opendid.application import create_app
    data = sample()
    data["session"]["sessionKey"] = "0x"
    path = write(tmp_path, data)
    first = create_app(path, instance_path=tmp_path / "i").config["SECRET_KEY"]
    again = create_app(path, instance_path=tmp_path / "i").config["SECRET_KEY"]
    assert first == again and len(first) == 130
    assert create_app(SAMPLE, instance_path=tmp_path / "j").config["SECRET_KEY"] == (
        sample()["session"]["sessionKey"])


def test_unknown_keys_are_named_in_a_warning(tmp_path, caplog):
    data = sample()
    data["kiltEndpiont"] = "typo"
    data["jwt"]["algoritm"] = "HS512"
    data["clients"]["example-client"]["redirectUrl"] = "x"
    load_config(write(tmp_path, data))
    for key in ("kiltEndpiont", "jwt.algoritm", "clients.example-client.redirectUrl"):
        assert f"unknown key '{key}'" in caplog.text


def test_kilt_endpoint_is_required(tmp_path):
    data = sample()
    data.pop("kiltEndpoint")
    with pytest.raises(ConfigError, match="kiltEndpoint"):
        load_config(write(tmp_path, data))


def test_clients_cli_adds_lists_and_removes_clients_the_server_uses(tmp_path):
    from opendid.application import create_app
    instance = ["--instance", str(tmp_path / "instance")]
    runner = CliRunner()
    create_app(SAMPLE, instance_path=tmp_path / "instance")  # loads example-client
    added = runner.invoke(main, ["clients", "add", "shop", "--redirect-url",
                                 "https://shop.example/cb", "--id-token-alg", "RS256",
                                 "--ctype", "0x" + "11" * 32, "--property", "Email",
                                 "--trusted-attester",
                                 "did:kilt:4p4joKXxjuU1DrupnATY4U8biap7bysGb9RUsQBsfLvunoWs",
                                 *instance])
    assert added.exit_code == 0, added.output
    secret = added.output.split("(shown once): ")[1].strip()
    listed = runner.invoke(main, ["clients", "list", *instance]).output
    assert "shop: standard (RS256), confidential, 1 requirement(s), source cli" in listed
    assert "example-client: OpenDID-style" in listed
    app = create_app(SAMPLE, instance_path=tmp_path / "instance")  # a restart keeps it
    client = app.extensions["opendid"].clients.get("shop")
    assert client.redirect_urls == ["https://shop.example/cb"]
    assert client.client_secret != secret and client_secret_matches(client.client_secret, secret)
    response = app.test_client().get("/api/v1/authorize?client_id=shop&redirect_uri="
                                     "https://shop.example/cb&response_type=code&state=s")
    assert (response.status_code, response.headers["Location"]) == (302, "/")
    refused = runner.invoke(main, ["clients", "remove", "example-client", *instance])
    assert refused.exit_code != 0 and "config.yaml" in refused.output
    bad = runner.invoke(main, ["clients", "add", "x", "--redirect-url", "ftp://x", *instance])
    assert bad.exit_code != 0 and "http(s)" in bad.output
    assert runner.invoke(main, ["clients", "remove", "shop", *instance]).exit_code == 0
    assert "shop" not in runner.invoke(main, ["clients", "list", *instance]).output


def test_clients_cli_sets_response_types_and_compiled_checks_directory(tmp_path, monkeypatch):
    from opendid.application import create_app
    instance = ["--instance", str(tmp_path / "instance")]
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "email.cel").write_text('token.pro.Email.endsWith("@example.org")\n')
    monkeypatch.chdir(tmp_path)  # a relative folder is taken from the working directory
    added = CliRunner().invoke(main, ["clients", "add", "guarded", "--redirect-url",
                                      "https://guarded.example/cb", "--response-type", "code",
                                      "--response-type", "id_token token",
                                      "--checks-directory", "checks", *instance])
    assert added.exit_code == 0, added.output
    app = create_app(SAMPLE, instance_path=tmp_path / "instance")
    client = app.extensions["opendid"].clients.get("guarded")
    assert client.response_types == ("code", "id_token token")
    assert client.checks_directory == str(checks.resolve())
    web = app.test_client()
    query = "/api/v1/authorize?client_id=guarded&redirect_uri=https://guarded.example/cb&state=s"
    assert web.get(query + "&response_type=code").status_code == 302
    refused = web.get(query + "&response_type=id_token&nonce=n")  # not listed: refused
    assert refused.status_code == 302 and "error=unauthorized_client" in \
        refused.headers["Location"]


@pytest.mark.parametrize("options, message", [
    (["--checks-directory", "broken"], "email.cel"),
    (["--checks-directory", "missing"], "no such folder"),
    (["--checks-directory", "empty"], "holds no *.cel policy"),
    (["--response-type", "token"], "Invalid value for '--response-type'"),
    (["--response-type", "code", "--response-type", "code"], "each response type once"),
])
def test_clients_cli_refuses_bad_response_types_and_checks_and_stores_nothing(
        tmp_path, monkeypatch, options, message):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "email.cel").write_text("token.pro.Email.endsWith(")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    instance = ["--instance", str(tmp_path / "instance")]
    runner = CliRunner()
    refused = runner.invoke(main, ["clients", "add", "bad", "--redirect-url",
                                   "https://bad.example/cb", *options, *instance])
    assert refused.exit_code == 2 and message in refused.output, refused.output
    assert "bad" not in runner.invoke(main, ["clients", "list", *instance]).output


def test_an_etcd_key_loads(tmp_path):
    """A config naming etcd starts (the etcd watcher serves its clients)."""
    data = sample()
    data["etcd"] = {"endpoints": ["127.0.0.1:2379"], "username": "u", "password": "p"}
    config = load_config(write(tmp_path, data))
    assert config.etcd is not None and config.etcd.endpoints == ["127.0.0.1:2379"]


def _start_app(instance: str) -> str:
    from opendid.application import create_app
    try:
        create_app(SAMPLE, instance_path=instance)
    except Exception as exc:  # the test reports whatever broke a worker's start
        return repr(exc)
    return "ok"


def test_workers_starting_together_on_a_new_instance_all_start(tmp_path):
    """gunicorn boots its workers at once; a new database must not crash one of them."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        for round_ in range(4):
            instance = str(tmp_path / f"instance-{round_}")
            assert pool.map(_start_app, [instance] * 3) == ["ok"] * 3


def production_sample() -> dict:
    """The sample with secrets strong enough for production: true."""
    data = sample()
    data["production"] = True
    data["jwt"]["secretKey"] = "x" * 40
    data["session"]["naclSecretKey"] = "0x" + "11" * 32
    data["session"]["naclPublicKey"] = "0x" + x25519_public_key(b"\x11" * 32).hex()
    data["clients"]["example-client"]["clientSecret"] = "y" * 32
    return data


@pytest.mark.parametrize("attesters", [[], None])
def test_production_refuses_a_requirement_without_trusted_attesters(tmp_path, attesters):
    data = production_sample()
    requirement = data["clients"]["example-client"]["requirements"][0]
    if attesters is None:
        requirement.pop("trustedAttesters")
    else:
        requirement["trustedAttesters"] = attesters
    data["clients"]["other"] = {"redirectUrls": ["https://o.example/cb"]}  # DID-only: fine
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    message = str(info.value)
    assert "clients.example-client.requirements.0.trustedAttesters" in message
    assert "self-attested" in message and "production: true" in message


def test_without_production_an_empty_attester_list_is_a_warning(tmp_path, caplog):
    data = sample()
    data["clients"]["example-client"]["requirements"][0]["trustedAttesters"] = []
    config = load_config(write(tmp_path, data))
    assert config.clients["example-client"].requirements[0].trustedAttesters == []
    assert "clients.example-client.requirements.0.trustedAttesters" in caplog.text
    assert "self-attested" in caplog.text
    caplog.clear()
    load_config(SAMPLE)  # attesters listed: no warning
    assert "trustedAttesters" not in caplog.text


def test_production_start_warns_of_cli_clients_without_trusted_attesters(tmp_path, caplog):
    from opendid.application import create_app
    instance = ["--instance", str(tmp_path / "instance")]
    added = CliRunner().invoke(main, ["clients", "add", "lax", "--redirect-url",
                                      "https://lax.example/cb", "--ctype", "0x" + "11" * 32,
                                      *instance])
    assert added.exit_code == 0, added.output
    create_app(write(tmp_path, production_sample()), instance_path=tmp_path / "instance")
    assert "client lax: key 'requirements.0.trustedAttesters' is empty" in caplog.text

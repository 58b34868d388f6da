"""Login policies (`checksDirectory`, issue 9 §2) over real HTTP against the dev chain, as an
attacker would meet them: a policy that does not hold refuses the login with a 403 and issues
nothing (no code, no token, no provider session), whatever the flow; a refused login cannot be
replayed into a success; a provider session does not answer for an identity the policy refuses.
Start-up refuses a broken folder, naming the file and line. Policies compile once per process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from conftest import OPENDID_REDIRECT, SECRET, STANDARD_REDIRECT
from opendid import metrics
from opendid.cli import main
from opendid.config import ConfigError, load_config
from opendid.devtools.login_driver import LoginDriver, decode_jwt_claims, result_params
from opendid.login import policies
from opendid.login.policies import REFUSED, PolicyError, policies_for
from opendid.store.clients import ClientRecord
from opendid.store.redis_grants import RedisGrantStore
from tests.test_config import sample, write
from tests.test_metrics import parse, value
from tests.test_sso import COOKIE, at_client, redeem, to_login_page

CODE = {"redirect_uri": OPENDID_REDIRECT, "response_type": "code", "scope": "openid",
        "state": "st", "nonce": "nn"}
IMPLICIT = {**CODE, "response_type": "id_token"}
EMAIL_OK = 'token.pro.Email.endsWith("@example.org")'
EMAIL_KILT = 'token.pro.Email.endsWith("@kilt.io")'


def folder(tmp_path: Path, name: str = "checks", **files: str) -> Path:
    """A policy folder with the given files (name -> text)."""
    path = tmp_path / name
    path.mkdir()
    for file_name, text in files.items():
        (path / file_name).write_text(text)
    return path


def requirement(provisioned: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"cTypeHash": provisioned["ctype"],
             "trustedAttesters": [provisioned["attester"]["did"]],
             "requiredProperties": ["Email"]}]


def register(opendid, client_id: str, checks: Path | None, credential: bool = True,
             **extra: Any) -> None:
    """A client with login policies, added to the running provider (as the CLI or etcd would)."""
    opendid.services.clients.upsert(ClientRecord(
        client_id=client_id, client_secret=SECRET,
        redirect_urls=[OPENDID_REDIRECT, STANDARD_REDIRECT],
        requirements=requirement(opendid.provisioned) if credential else [],
        checks_directory=None if checks is None else str(checks), **extra), source="cli")


def issued(services) -> int:
    """How many codes and tokens the provider has stored, in whichever store holds them."""
    store = services.grants
    if isinstance(store, RedisGrantStore):
        return sum(1 for _ in store.client.scan_iter(f"{store.prefix}code:*")) + sum(
            1 for _ in store.client.scan_iter(f"{store.prefix}token:*"))
    conn = store.db.connect()
    return sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
               for table in ("codes", "tokens"))


def ready(driver: LoginDriver, client_id: str, **params: str) -> None:
    """A credential login up to the wallet's answer."""
    started = driver.authorize(**{**CODE, "client_id": client_id, **params})
    assert started.status_code == 302, started.text
    assert driver.open_session().status_code == 200
    driver.fetch_request()


def assert_refused(response: requests.Response) -> None:
    """The refusal: 403 with the policy message, and nothing for the client."""
    assert (response.status_code, response.text) == (403, REFUSED)
    assert "Location" not in response.headers
    assert COOKIE not in response.cookies  # no provider session either


def did_login(driver: LoginDriver, client_id: str) -> requests.Response:
    started = driver.authorize(**{**IMPLICIT, "client_id": client_id})
    assert started.status_code == 302, started.text
    nonce = result_params(started.headers["Location"])["nonce"]
    return driver.did_login(driver.did_token(nonce))


# -- credential logins -------------------------------------------------------------------------


def test_a_policy_on_a_credential_property_that_holds_lets_the_login_through(driver, opendid,
                                                                            tmp_path):
    register(opendid, "policy-ok", folder(tmp_path, **{"email.cel": EMAIL_OK}))
    params = driver.login(**{**CODE, "client_id": "policy-ok"})
    response = driver.token(grant_type="authorization_code", code=params["code"],
                            redirect_uri=OPENDID_REDIRECT, client_id="policy-ok",
                            client_secret=SECRET)
    assert response.status_code == 200, response.text
    claims = decode_jwt_claims(response.json()["id_token"])
    assert claims["pro"] == {"Email": "some@example.org"}


@pytest.mark.parametrize("flow", [CODE, IMPLICIT], ids=["code", "implicit"])
def test_a_policy_that_does_not_hold_refuses_and_issues_nothing(driver, opendid, tmp_path,
                                                                flow):
    register(opendid, "policy-kilt", folder(tmp_path, **{"email.cel": EMAIL_KILT}))
    ready(driver, "policy-kilt", **flow)
    before, counted = issued(opendid.services), policy_refusals()
    assert_refused(driver.submit())
    assert issued(opendid.services) == before
    assert policy_refusals() == counted + 1  # /metrics counts it (a CLI client: "other")


def policy_refusals() -> float:
    samples = parse(metrics.exposition()[0].decode())
    return value(samples, "opendid_policy_refusals_total", client="other")


def test_a_refused_login_cannot_be_replayed_into_a_success(driver, opendid, tmp_path):
    """The credential challenge is used up by the refused login: after the client is pointed
    at a folder whose policy holds, the same presentation is still refused (the user starts
    again, and the new login meets the new policy)."""
    register(opendid, "policy-switch", folder(tmp_path, "no", **{"email.cel": EMAIL_KILT}))
    ready(driver, "policy-switch")
    assert driver.wallet_session is not None and driver.credential_challenge is not None
    envelope = driver.wallet.submit(driver.wallet_session,
                                    driver.wallet.matching(driver.wallet_session.requirements)[0],
                                    driver.credential_challenge)
    assert_refused(driver.post_credentials(envelope))
    register(opendid, "policy-switch", folder(tmp_path, "yes", **{"email.cel": EMAIL_OK}))
    replay = driver.post_credentials(envelope)
    assert replay.status_code == 400 and "already used" in replay.text
    assert "Location" not in replay.headers
    driver.fetch_request()  # a new attempt in the same login meets the new folder
    assert driver.submit().status_code == 204


def test_every_policy_file_must_hold(driver, opendid, tmp_path):
    both = folder(tmp_path, "both", **{"a-email.cel": EMAIL_OK,
                                       "b-did.cel": 'token.sub.startsWith("did:kilt:4")'})
    register(opendid, "policy-both", both)
    assert "code" in driver.login(**{**CODE, "client_id": "policy-both"})
    # the last file (in name order) fails: the ones before it passing is not enough
    last_fails = folder(tmp_path, "last", **{"a-email.cel": EMAIL_OK,
                                             "b-did.cel": 'token.sub.startsWith("did:kilt:4")',
                                             "c-name.cel": 'token.w3n == "somebody-else"'})
    register(opendid, "policy-last", last_fails)
    ready(driver, "policy-last")
    assert_refused(driver.submit())


@pytest.mark.parametrize("expression", [
    'token.pro.Phone == "+41"',        # a key the token does not have
    "token.pro.Email",                 # a string, not a bool
    "1 / 0 == 1",                      # an error of the expression itself
    'token.pro.Email.size() > "3"',    # no such overload
])
def test_an_evaluation_error_or_a_non_bool_refuses_never_a_500(driver, opendid, tmp_path,
                                                               expression):
    register(opendid, "policy-broken", folder(tmp_path, **{"p.cel": expression}))
    ready(driver, "policy-broken")
    assert_refused(driver.submit())


@pytest.mark.parametrize("name, expression", [
    ("missing.cel", "tokn.sub == ''"),  # celpy's message prints the whole activation
    ("overload.cel", 'token.pro.Email.size() > "3" || token.pro.Email.endsWith(1)'),
])
def test_the_refusal_is_logged_with_file_and_client_never_the_token(driver, opendid, tmp_path,
                                                                    caplog, name, expression):
    register(opendid, "policy-logged", folder(tmp_path, **{name: expression}))
    ready(driver, "policy-logged")
    with caplog.at_level(logging.DEBUG):
        assert_refused(driver.submit())
    [line] = [r.getMessage() for r in caplog.records if r.name == "opendid.login.policies"]
    assert name in line and "policy-logged" in line
    for secret in (opendid.provisioned["user"]["did"], "MapType"):
        assert secret not in line
    # not even celpy's own debug log carries the token's values
    assert not [r for r in caplog.records if "some@example.org" in r.getMessage()]


def test_a_standard_client_policy_sees_its_id_token_claims(driver, opendid, tmp_path):
    """The token a standard client gets: `aud` is its id, the credential is named."""
    checks = folder(tmp_path, **{"aud.cel": 'token.aud == "policy-standard"',
                                 "cred.cel": 'token.kilt_credential.cTypeHash.startsWith("0x")'})
    register(opendid, "policy-standard", checks, id_token_alg="RS256")
    params = driver.login(**{**CODE, "client_id": "policy-standard",
                             "redirect_uri": STANDARD_REDIRECT})
    assert redeem(driver, params["code"], "policy-standard")["id_token"]


# -- DID-only logins ---------------------------------------------------------------------------


def test_a_did_only_client_policy_on_sub_both_ways(driver, opendid, tmp_path, provisioned):
    did = provisioned["user"]["did"]
    register(opendid, "did-policy-me",
             folder(tmp_path, "me", **{"sub.cel": f'token.sub == "{did}"'}), credential=False)
    done = did_login(driver, "did-policy-me")
    assert done.status_code == 204, done.text
    assert decode_jwt_claims(result_params(done.headers["Location"])["id_token"])["sub"] == did

    other = LoginDriver(driver.base_url, driver.wallet, driver.chain)
    register(opendid, "did-policy-other",
             folder(tmp_path, "other", **{"sub.cel": f'token.sub != "{did}"'}), credential=False)
    before = issued(opendid.services)
    assert_refused(did_login(other, "did-policy-other"))
    assert issued(opendid.services) == before
    other.http.close()


# -- single sign-on ------------------------------------------------------------------------------


def test_a_provider_session_does_not_answer_for_an_identity_the_policy_refuses(
        driver, opendid, tmp_path):
    """Logged in for a standard client without policy; a second client with the same
    requirements but a policy that refuses: no silent answer (`access_denied` at the client),
    and without `prompt=none` the wallet page, never a code."""
    register(opendid, "sso-open", None, id_token_alg="RS256")
    register(opendid, "sso-guarded", folder(tmp_path, **{"email.cel": EMAIL_KILT}),
             id_token_alg="RS256")
    standard = {**CODE, "redirect_uri": STANDARD_REDIRECT}
    driver.login(**{**standard, "client_id": "sso-open"})
    assert "code" in at_client(driver.authorize(**{**standard, "client_id": "sso-open",
                                                   "prompt": "none"}))
    silent = at_client(driver.authorize(**{**standard, "client_id": "sso-guarded",
                                           "prompt": "none"}))
    assert silent["error"] == "access_denied" and "code" not in silent
    to_login_page(driver.authorize(**{**standard, "client_id": "sso-guarded"}))


# -- start-up ------------------------------------------------------------------------------------


def config_with(tmp_path: Path, checks: str) -> Path:
    data = sample()
    data["clients"]["example-client"]["checksDirectory"] = checks
    return write(tmp_path, data)


def test_a_rhai_script_stops_start_up_with_its_cel_translation(tmp_path):
    checks = folder(tmp_path, **{"check-suffix.rhai": 'let SUFFIX = "kilt.io";\n'})
    path = config_with(tmp_path, str(checks))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "clients.example-client.checksDirectory" in message
    assert "check-suffix.rhai" in message and "Rhai scripts are not supported" in message
    assert 'token.pro.Email.endsWith("kilt.io")' in message
    # the translation it shows is itself a policy that compiles
    translated = folder(tmp_path, "translated", **{"check-suffix.cel": policies.RHAI_TRANSLATION})
    assert len(policies_for(translated).policies) == 1


def test_a_syntax_error_stops_serve_naming_file_and_line(tmp_path):
    checks = folder(tmp_path, **{"ok.cel": EMAIL_OK,
                                 "broken.cel": '// comment\ntoken.sub.startsWith("did:")\n'
                                               '  && token.pro.Email.endsWith("x"))\n'})
    result = CliRunner().invoke(main, ["serve", "--config", str(config_with(tmp_path,
                                                                           str(checks)))])
    assert result.exit_code != 0
    assert f"{checks / 'broken.cel'}:3:35" in result.output, result.output
    assert "CEL syntax error at line 3, column 35" in result.output


@pytest.mark.parametrize("files, problem", [
    ({}, "holds no *.cel policy"),
    ({"README.md": "notes"}, "not a policy file"),
    ({"p.cel": "// only a comment\n"}, "holds no expression"),
    ({"p.cel": "(" * 30 + "true" + ")" * 30}, "nested too deeply"),
    ({"p.cel": "true || " * 3000 + "true"}, "larger than"),
])
def test_a_folder_that_cannot_be_used_stops_start_up(tmp_path, files, problem):
    checks = folder(tmp_path, **files)
    with pytest.raises(ConfigError, match="checksDirectory") as info:
        load_config(config_with(tmp_path, str(checks)))
    assert problem in str(info.value)


def test_a_missing_folder_stops_start_up(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        load_config(config_with(tmp_path, str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="name a folder"):
        load_config(config_with(tmp_path, " "))


def test_a_relative_folder_is_taken_from_the_config_files_folder(tmp_path, monkeypatch):
    folder(tmp_path, "checks", **{"email.cel": EMAIL_OK})
    path = config_with(tmp_path, "checks")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.clients["example-client"].checksDirectory == str(tmp_path / "checks")


def test_the_folder_reaches_the_client_store(tmp_path):
    from opendid.application import create_app

    checks = folder(tmp_path, **{"email.cel": EMAIL_OK})
    app = create_app(config_with(tmp_path, "checks"), instance_path=tmp_path / "instance")
    record = app.extensions["opendid"].clients.get("example-client")
    assert record.checks_directory == str(checks)


# -- compiled once -------------------------------------------------------------------------------


def test_policies_compile_once_per_process_not_per_login(driver, opendid, tmp_path):
    checks = folder(tmp_path, **{"a.cel": EMAIL_OK, "b.cel": "token.iat > 0"})
    first = policies_for(checks)
    compiled = policies.compilations()
    assert policies_for(str(checks) + "/") is first  # one folder, however it is spelled
    register(opendid, "policy-once", checks)
    for _ in range(2):
        assert "code" in driver.login(**{**CODE, "client_id": "policy-once"})
    load_config(config_with(tmp_path, str(checks)))
    assert policies.compilations() == compiled


def test_a_folder_that_fails_at_run_time_refuses_logins_and_compiles_once(driver, opendid,
                                                                          tmp_path):
    """A client added at run time (CLI, etcd) whose folder is broken: every login is refused
    (fail closed, not a 500), and the folder is not recompiled at each login."""
    checks = folder(tmp_path, **{"bad.cel": "token.sub =="})
    register(opendid, "policy-bad-folder", checks)
    with pytest.raises(PolicyError, match=r"bad\.cel:1:11"):
        policies_for(checks)
    compiled = policies.compilations()
    ready(driver, "policy-bad-folder")
    assert_refused(driver.submit())
    assert policies.compilations() == compiled


# -- the page ------------------------------------------------------------------------------------


def test_the_page_says_not_allowed_for_this_application(opendid):
    page = requests.get(f"{opendid.url}/login/failure", params={"reason": "policy"}, timeout=30)
    assert page.status_code == 200
    assert "Not allowed for this application" in page.text


def test_the_policy_folder_in_the_readme_compiles(tmp_path):
    """README's example policies are real ones."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- policy-example -->", 1)[1].split("```", 2)[1]
    files: dict[str, str] = {}
    name = None
    for line in block.splitlines()[1:]:
        if line.startswith("# ") and line.endswith(".cel"):
            name = Path(line[2:]).name
            files[name] = ""
        elif name:
            files[name] += line + "\n"
    assert len(files) >= 2
    loaded = policies_for(folder(tmp_path, **files))
    assert [p.name for p in loaded.policies] == sorted(files)
    claims = {"sub": "did:kilt:4abc", "w3n": "", "pro": {"Email": "ann@example.org"}}
    assert loaded.refusal(claims) is None
    assert loaded.refusal({**claims, "pro": {"Email": "ann@elsewhere.org"}}) is not None

"""A real relying party: the demo app's authlib client, configured only with the discovery URL,
runs the code flow with PKCE and the implicit flow, verifying ID tokens through JWKS."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from opendid.devtools.login_driver import LoginDriver


def _login_through_rp(driver: LoginDriver, rp_url: str, path: str):
    page = driver.http.get(rp_url + path, timeout=30)  # RP -> /authorize -> login page
    assert page.status_code == 200 and "Log in with your KILT identity" in page.text
    assert driver.open_session().status_code == 200
    driver.fetch_request()
    done = driver.submit()
    assert done.status_code == 204, done.text
    return done.headers["Location"]


def test_code_flow_with_pkce_through_the_demo_rp(driver, opendid, provisioned):
    location = _login_through_rp(driver, opendid.rp_url, "/login/code")
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(opendid.rp_url + "/callback?")
    assert "code" in query and "state" in query
    greeting = driver.http.get(location, timeout=30)
    assert greeting.status_code == 200, greeting.text
    assert f"Hello, {provisioned['user']['web3name']}!" in greeting.text
    assert provisioned["user"]["did"] in greeting.text
    assert "authorization code flow" in greeting.text


def test_the_rp_sent_a_pkce_challenge(driver, opendid):
    response = driver.http.get(opendid.rp_url + "/login/code", allow_redirects=False)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["nonce"]


def test_implicit_flow_through_the_demo_rp(driver, opendid, provisioned):
    location = _login_through_rp(driver, opendid.rp_url, "/login/implicit")
    assert location.startswith(opendid.rp_url + "/callback/implicit#")
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
    assert set(fragment) == {"id_token", "state", "iss"}
    # what the callback page's script does: post the fragment to the RP's server
    greeting = driver.http.post(opendid.rp_url + "/callback/implicit", data=fragment)
    assert greeting.status_code == 200, greeting.text
    assert f"Hello, {provisioned['user']['web3name']}!" in greeting.text
    assert "implicit flow" in greeting.text


def test_rp_rejects_a_forged_id_token(driver, opendid):
    location = _login_through_rp(driver, opendid.rp_url, "/login/implicit")
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
    head, payload, signature = fragment["id_token"].split(".")
    fragment["id_token"] = f"{head}.{payload}.{signature[::-1]}"
    response = driver.http.post(opendid.rp_url + "/callback/implicit", data=fragment)
    assert response.status_code == 400 and "Login failed" in response.text

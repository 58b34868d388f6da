"""Browser tests: a real Chromium (Debian's) driven by Playwright against OpenDID in dev mode,
the dev chain and the demo relying party. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import OUTPUT, SECRET, bind_server, start_server, write_test_config
from demo_rp.app import create_demo_app
from opendid.application import create_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = OUTPUT / "screenshots"
OTHER_CTYPE = "0x" + "ab" * 32


@dataclass
class DevSite:
    url: str
    rp_url: str
    did_rp_url: str


@pytest.fixture(scope="session")
def dev_site(provisioned: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> DevSite:
    server, rp, did_rp = bind_server(), bind_server(), bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    rp_url = f"http://127.0.0.1:{rp.server_port}"
    did_rp_url = f"http://127.0.0.1:{did_rp.server_port}"
    folder = tmp_path_factory.mktemp("dev-site")
    path = write_test_config(provisioned, folder / "config.yaml", url,
                             [f"{rp_url}/callback", f"{rp_url}/callback/implicit"])
    data = yaml.safe_load(path.read_text())
    data["clients"]["did-rp-client"] = {
        "redirectUrls": [f"{did_rp_url}/callback", f"{did_rp_url}/callback/implicit"],
        "clientSecret": SECRET, "idTokenSignedResponseAlg": "RS256",
        "responseTypes": ["code", "id_token"]}
    data["clients"]["other-ctype-client"] = {
        "requirements": [{"cTypeHash": OTHER_CTYPE, "trustedAttesters": [],
                          "requiredProperties": []}],
        "redirectUrls": [f"{rp_url}/callback"], "clientSecret": SECRET}
    path.write_text(yaml.safe_dump(data))
    server.app = create_app(path, dev=True, instance_path=folder / "instance",
                            wallet_path=provisioned["wallet"])
    rp.app = create_demo_app(url, "rp-client", SECRET, rp_url)
    did_rp.app = create_demo_app(url, "did-rp-client", SECRET, did_rp_url)
    for each in (server, rp, did_rp):
        start_server(each)
    return DevSite(url, rp_url, did_rp_url)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: `make test` installs it (apt-get)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.set_default_timeout(20000)
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

"""Browser tests: a real Chromium (Debian's) driven by Playwright against OpenDID in dev mode,
the dev chain and the demo relying party. Screenshots go to test-output/screenshots/.

Every page a test opens is watched: a CSP violation, an uncaught script error or any other
console error fails the test at teardown (see `open_page`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    expect,
    sync_playwright,
)

from conftest import OUTPUT, SECRET, bind_server, serve_opendid
from demo_rp.app import create_demo_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = OUTPUT / "screenshots"
OTHER_CTYPE = "0x" + "ab" * 32
# One patience for every wait: the machine is shared and the chain is slow under load. Waits
# end as soon as their condition holds; this only bounds how long a broken page can take.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)

# Chromium reports every HTTP error answer on the console. Always expected: the login page calls
# /api/v1/* with fetch and turns 4xx/503 answers into failure panels. Both sites have an icon, so
# a /favicon.ico 404 is an error like any other. A test that leads to another error answer says
# so (`Watched.expect_http_error`); nothing else is expected. A request that fails without an
# answer (refused, reset, blocked) is an error too.
HTTP_ERROR = re.compile(r"^Failed to load resource: the server responded with a status of "
                        r"(\d{3}) ")


@dataclass
class DevSite:
    url: str
    rp_url: str
    did_rp_url: str


@pytest.fixture(scope="session")
def dev_site(provisioned: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevSite]:
    server, rp, did_rp = bind_server(), bind_server(), bind_server()
    url = f"http://127.0.0.1:{server.server_port}"
    rp_url = f"http://127.0.0.1:{rp.server_port}"
    did_rp_url = f"http://127.0.0.1:{did_rp.server_port}"
    clients = {
        "did-rp-client": {
            "redirectUrls": [f"{did_rp_url}/callback", f"{did_rp_url}/callback/implicit"],
            "clientSecret": SECRET, "idTokenSignedResponseAlg": "RS256",
            "responseTypes": ["code", "id_token"]},
        "other-ctype-client": {
            "requirements": [{"cTypeHash": OTHER_CTYPE, "trustedAttesters": [],
                              "requiredProperties": []}],
            "redirectUrls": [f"{rp_url}/callback"], "clientSecret": SECRET}}
    rp.app = create_demo_app(url, "rp-client", SECRET, rp_url)
    did_rp.app = create_demo_app(url, "did-rp-client", SECRET, did_rp_url)
    with serve_opendid(provisioned, tmp_path_factory.mktemp("dev-site"), server,
                       [f"{rp_url}/callback", f"{rp_url}/callback/implicit"], rp, did_rp,
                       dev=True, clients=clients):
        yield DevSite(url, rp_url, did_rp_url)


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


@dataclass
class Watched:
    """What went wrong on the pages of one test, as Chromium reported it."""

    problems: list[str] = field(default_factory=list)
    expected: set[tuple[str, str]] = field(default_factory=set)

    def expect_http_error(self, path: str, status: int) -> None:
        self.expected.add((path, str(status)))

    def _expected(self, message: ConsoleMessage) -> bool:
        answer = HTTP_ERROR.match(message.text)
        if answer is None:
            return False
        path, status = urlsplit(message.location.get("url", "")).path, answer.group(1)
        if path.startswith("/api/v1/") and (status[0] == "4" or status == "503"):
            return True
        return (path, status) in self.expected

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not self._expected(message):
            self.problems.append(f"console error at {message.location.get('url')}: "
                                 f"{message.text}")

    def page_error(self, error: Exception) -> None:
        self.problems.append(f"uncaught script error: {error}")

    def request_failed(self, request: Request) -> None:
        # a navigation that replaces the page cancels what the old page still had in flight
        if request.failure == "net::ERR_ABORTED" and not request.is_navigation_request():
            return
        self.problems.append(f"request failed: {request.method} {request.url}: "
                             f"{request.failure}")


def watch(context: BrowserContext, watched: Watched) -> None:
    context.on("console", watched.console)
    context.on("weberror", lambda web_error: watched.page_error(web_error.error))
    context.on("requestfailed", watched.request_failed)


@pytest.fixture()
def watched() -> Watched:
    return Watched()


@pytest.fixture()
def open_page(browser: Browser, watched: Watched) -> Iterator[Callable[..., Page]]:
    """Opens pages in fresh browser contexts; at teardown, closes them and fails the test if any
    page reported a console error (a CSP violation is one) or an uncaught script error."""
    contexts: list[BrowserContext] = []

    def new_page(**context_options: Any) -> Page:
        context = browser.new_context(**{"viewport": {"width": 1000, "height": 800},
                                         **context_options})
        contexts.append(context)
        watch(context, watched)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        return page

    yield new_page
    for context in contexts:
        context.close()
    assert not watched.problems, "the browser reported:\n" + "\n".join(watched.problems)


@pytest.fixture()
def page(open_page: Callable[..., Page]) -> Page:
    return open_page()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

"""The access log formats only the atoms it uses, yet writes what gunicorn's own logger would."""

from __future__ import annotations

import datetime
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from opendid.server import LOGGER_CLASS, RedactingLogger

FORMATS = [
    Config().access_log_format,  # gunicorn's default, the one `opendid serve` uses
    '%(h)s "%(r)s" %(s)s %(b)s %(M)sms %(D)sus %({x-request-id}i)s %({X-Request-Id}i)s',
    '%(m)s %(U)s %(q)s %(H)s %(L)s %(T)s %(B)s %({content-type}o)s %({missing}i)s %(zz)s',
    '%({location}o)s %({REMOTE_ADDR}e)s %(p)s',
]


def exchange(path: str = "/api/v1/token") -> tuple[Any, Any, dict[str, Any]]:
    headers = [("X-REQUEST-ID", 'abc"def'), ("User-Agent", 'agent "quoted"'),
               ("Authorization", "Basic b3BlbmRpZC1jbGllbnQ6c2VjcmV0")]
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "RAW_URI": path + "?a=1",
               "PATH_INFO": path, "QUERY_STRING": "a=1", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_USER_AGENT": 'agent "quoted"', "HTTP_REFERER": "http://rp.example/x",
               "HTTP_AUTHORIZATION": "Basic b3BlbmRpZC1jbGllbnQ6c2VjcmV0"}
    resp = SimpleNamespace(status="302 FOUND", sent=1234,
                           headers=[("Content-Type", "text/html"),
                                    ("Location", "http://rp.example/cb?code=SECRETCODE")])
    return resp, SimpleNamespace(headers=headers), environ


def logger(fmt: str) -> RedactingLogger:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    cfg.set("logger_class", LOGGER_CLASS)
    log = RedactingLogger(cfg)
    log.now = lambda: "[26/Nov/2026:20:00:00 +0000]"  # both lines of a test in one second
    return log


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_gunicorns_line_with_the_redirect_redacted(fmt: str) -> None:
    log = logger(fmt)
    resp, req, environ = exchange()
    took = datetime.timedelta(seconds=1, microseconds=234567)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log.access_log.handlers = [Keep()]
    log.access(resp, req, environ, took)
    expected = fmt % SafeAtoms(log.atoms(resp, req, environ, took))  # redacting atoms
    assert lines == [expected]
    assert "SECRETCODE" not in lines[0]
    unredacted = fmt % SafeAtoms(Logger.atoms(log, resp, req, environ, took))
    assert (lines[0] == unredacted) == ("{location}o" not in fmt)


def test_a_did_login_token_in_the_path_is_redacted_in_the_line() -> None:
    log = logger(Config().access_log_format)
    resp, req, environ = exchange("/api/v1/did/eyJhbGciOi.secret.part")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log.access_log.handlers = [Keep()]
    log.access(resp, req, environ, datetime.timedelta(milliseconds=5))
    assert "/api/v1/did/[redacted]" in lines[0] and "secret" not in lines[0]

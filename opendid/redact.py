"""Keep bearer values out of log lines: the DID-only login token travels in the URL path.

`POST /api/v1/did/<token>` carries a signed login token; a redirect's query or fragment carries
codes and tokens. Access logs, error logs and our own messages pass through `redact` first.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

REDACTED = "[redacted]"
# Slashes may be doubled and letters percent-encoded; whatever follows the route is the token.
_DID_LOGIN = re.compile(r"(/+api/+v1/+did/+)[^\s\"']*", re.IGNORECASE)
_ENCODED = re.compile(r"%[0-9a-fA-F]{2}")


def redact(text: str) -> str:
    """`text` with every DID-login token (a path under /api/v1/did/) replaced by a marker."""
    if text.isascii() and "%" not in text and "did/" not in text.lower():
        return text  # the pattern cannot match: every log line pays only this check
    if _ENCODED.search(text):
        decoded = unquote(text)
        if _DID_LOGIN.search(decoded):
            return _DID_LOGIN.sub(r"\1" + REDACTED, decoded)
    return _DID_LOGIN.sub(r"\1" + REDACTED, text)


def redact_location(location: str) -> str:
    """A redirect target without its query and fragment (codes, id_tokens, refresh tokens)."""
    cut = min((i for i in (location.find("?"), location.find("#")) if i >= 0),
              default=len(location))
    return redact(location[:cut]) + ("?" + REDACTED if cut < len(location) else "")


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message through `redact` (any format, any arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is left for the handler to report
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

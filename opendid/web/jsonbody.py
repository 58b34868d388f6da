"""Strict, bounded JSON for request bodies and form fields: every malformed body is a ValueError
(so a 4xx), never a RecursionError or a value later code cannot handle.

Python's `json` recurses once per nesting level and raises RecursionError (not ValueError) a
few hundred levels deep, and anything that walks a deep value afterwards (repr, pydantic, our
own code) can hit the same limit. Real messages are a handful of levels deep, so anything deeper
than MAX_DEPTH is refused right after parsing. NaN, Infinity and numbers that overflow a float
are not JSON (RFC 8259 §6), and strings with unpaired surrogates (`"\ud800"`) are not I-JSON
(RFC 7493 §2.1) and cannot be stored or encoded later: both are refused too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask.json.provider import DefaultJSONProvider

from opendid.kilt.jsondepth import json_depth

MAX_DEPTH = 64


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("JSON string with an unpaired surrogate") from None


def loads(data: str | bytes) -> Any:
    """Parse JSON strictly; ValueError for anything malformed, too deep or not finite."""
    try:
        value = json.loads(data, parse_constant=_no_constants, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:  # a ValueError already; say what it is
        raise ValueError(f"JSON body is not UTF-8: {exc.reason}") from None
    if json_depth(value, MAX_DEPTH, _check_text) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with `loads` above: `request.get_json` gets a ValueError (400,
    or None when silent) for every malformed body."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)

"""Login policies (`checksDirectory`): expressions every login of one client must satisfy.

The original OpenDID runs each file of a client's `checksDirectory` as a Rhai script over the
id_token it is about to issue, and refuses the login unless every script returns true. Here each
`*.cel` file holds one CEL expression (Common Expression Language: no side effects, no loops
but macros over the input, so an evaluation always ends) over `token`, the claims of the ID
token this client would receive, e.g. `token.pro.Email.endsWith("@example.org")`.

Fail closed: a policy that yields false, anything but a bool, or an evaluation error (a missing
key) refuses the login, and so does a folder that cannot be compiled. A folder is compiled once
per process (`policies_for`, keyed by its resolved path); the config's folders at start-up, so
a broken file, a `.rhai` script, a stray file or an empty folder stops start-up with the file
and line. Refusals are logged with the file and the client, never with the token.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import lark
from celpy import celtypes

from opendid.login.service import LoginError

log = logging.getLogger(__name__)
# celpy logs the values it evaluates (the token's claims: personal data) at debug level, and a
# failing function's arguments at error level; this module logs each refusal itself.
logging.getLogger("celpy").setLevel(logging.CRITICAL + 1)

POLICY_SUFFIX = ".cel"
# A policy is one expression written by the operator: a bigger file is a mistake.
MAX_POLICY_BYTES = 16 * 1024
# Syntax-tree depth at which celpy's recursive evaluator would exhaust the stack (it fails near
# 600 under its own recursion limit): refused at compile time instead of failing every login.
# About 25 levels of parentheses, or a chain of 120 `&&`.
MAX_DEPTH = 250
REFUSED = "Login refused by this application's login policy"
REASON = "policy"

RHAI_TRANSLATION = """\
// Only users whose email address ends with kilt.io may log in.
token.pro.Email.endsWith("kilt.io")"""


class PolicyError(ValueError):
    """A policy folder that cannot be used; the message names the file (and line) and why."""


@dataclass(frozen=True)
class Policy:
    name: str
    runner: celpy.Runner

    def verdict(self, token: celtypes.Value) -> str | None:
        """None when the policy holds; else why not, in words that carry no token value
        (celpy's messages may print the whole activation, token included)."""
        try:
            result = self.runner.evaluate({"token": token})
        except celpy.CELEvalError as exc:
            return f"evaluation error ({_cause(exc)})"
        except RecursionError:
            return "evaluation error (nested too deeply)"
        except Exception as exc:  # any failure of a policy refuses the login
            return f"evaluation error ({type(exc).__name__})"
        if isinstance(result, celpy.CELEvalError):
            return f"evaluation error ({_cause(result)})"
        if not isinstance(result, celtypes.BoolType):
            return f"returned a {type(result).__name__}, not a bool"
        return None if bool(result) else "returned false"


@dataclass(frozen=True)
class ClientPolicies:
    """The compiled policies of one folder, in file-name order."""

    directory: Path
    policies: tuple[Policy, ...]

    def refusal(self, claims: Mapping[str, Any]) -> tuple[str, str] | None:
        """(file name, why) of the first policy that does not hold; None when all hold."""
        token = celpy.json_to_cel(dict(claims))
        for policy in self.policies:
            why = policy.verdict(token)
            if why is not None:
                return policy.name, why
        return None


def _cause(error: celpy.CELEvalError) -> str:
    """The kind of an evaluation error (KeyError, TypeError…), never its text."""
    kind = error.args[1] if len(error.args) > 1 else None
    return kind.__name__ if isinstance(kind, type) else "CEL"


def resolve_directory(value: str, base: Path | None = None) -> Path:
    """A `checksDirectory` as an absolute path: a relative one is taken from `base` (the config
    file's folder), or from the working directory as the original does."""
    if not value.strip():
        raise PolicyError("name a folder of *.cel policy files")
    path = Path(value)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path.resolve()


_environment: celpy.Environment | None = None


def _env() -> celpy.Environment:
    """One CEL environment per process. celpy's constructor sets the recursion limit to 2500;
    a higher limit the process had is kept."""
    global _environment
    if _environment is None:
        before = sys.getrecursionlimit()
        _environment = celpy.Environment()
        sys.setrecursionlimit(max(before, sys.getrecursionlimit()))
    return _environment


def _depth(tree: lark.Tree) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children
                     if isinstance(child, lark.Tree))
    return deepest


def compile_policy(path: Path) -> Policy:
    """One `*.cel` file, compiled; a `PolicyError` names the file, and the line of a syntax
    error."""
    global _compilations
    _compilations += 1
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: larger than {MAX_POLICY_BYTES} bytes; a policy is one "
                          "expression")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text") from None
    if not _code(text):
        raise PolicyError(f"{path}: holds no expression; write one CEL expression over token")
    env = _env()
    try:
        tree = env.compile(text)
    except celpy.CELParseError as exc:
        where = f"{path}:{exc.line}:{exc.column}" if exc.line else str(path)
        excerpt = str(exc).rstrip()
        raise PolicyError(f"{where}: CEL syntax error at line {exc.line}, column "
                          f"{exc.column}:\n{excerpt}") from None
    except RecursionError:
        raise PolicyError(f"{path}: the expression is nested too deeply") from None
    if _depth(tree) > MAX_DEPTH:
        raise PolicyError(f"{path}: the expression is nested too deeply (split it into "
                          "several files: every file must hold)")
    return Policy(path.name, env.program(tree))


def _code(text: str) -> bool:
    """Whether anything but blank lines and // comments is left."""
    return any(line.strip() and not line.strip().startswith("//") for line in text.splitlines())


def load_policies(directory: Path) -> ClientPolicies:
    """Compile every `*.cel` file of a folder. Hidden files and sub-folders are skipped; a
    `.rhai` script, any other file, or no policy at all is an error (the original ran every
    file of the folder, and an empty folder is more likely a missing mount than a wish to
    let everyone in)."""
    if not directory.is_dir():
        raise PolicyError(f"{directory}: no such folder")
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise PolicyError(f"{directory}: cannot list: {exc.strerror}") from None
    policies = []
    for entry in entries:
        if entry.name.startswith(".") or entry.is_dir():
            continue
        if entry.suffix.lower() == ".rhai":
            raise PolicyError(
                f"{entry}: Rhai scripts are not supported; write each check as one CEL "
                f"expression over token (the id_token's claims) in a *{POLICY_SUFFIX} file. "
                f"The original's example check-suffix.rhai becomes check-suffix.cel:\n"
                f"{RHAI_TRANSLATION}")
        if entry.suffix != POLICY_SUFFIX:
            raise PolicyError(f"{entry}: not a policy file (policies are *{POLICY_SUFFIX} "
                              "files; move other files out of the folder)")
        policies.append(compile_policy(entry))
    if not policies:
        raise PolicyError(f"{directory}: holds no *{POLICY_SUFFIX} policy (an empty folder "
                          "would let every login through)")
    return ClientPolicies(directory, tuple(policies))


_cache: dict[Path, ClientPolicies | PolicyError] = {}
_lock = threading.Lock()
_compilations = 0


def policies_for(directory: str | Path) -> ClientPolicies:
    """The compiled policies of a folder, compiled at most once per process (a folder that
    failed keeps failing until the client names another folder, or a restart)."""
    path = resolve_directory(str(directory))
    with _lock:
        found = _cache.get(path)
        if found is None:
            try:
                found = load_policies(path)
            except PolicyError as exc:
                found = exc
            _cache[path] = found
    if isinstance(found, PolicyError):
        raise found
    return found


def compilations() -> int:
    """How many policy files this process has compiled or tried to (once per folder)."""
    return _compilations


def enforce(client_id: str, directory: str | None, claims: Mapping[str, Any]) -> None:
    """Raise the 403 refusal unless every policy of the client holds for these claims."""
    if directory is None:
        return
    try:
        refusal = policies_for(directory).refusal(claims)
    except PolicyError as exc:
        log.error("login refused for client %s: its login policies cannot be used: %s",
                  client_id, exc)
        raise LoginError(403, REFUSED, reason=REASON) from None
    if refusal is not None:
        name, why = refusal
        log.warning("login refused for client %s by policy %s: %s", client_id, name, why)
        raise LoginError(403, REFUSED, reason=REASON)

"""`make mutation`: mutmut over the security-critical modules, with one dev chain for the run.

mutmut 3 copies `opendid/` into `mutants/` and runs pytest there once per mutant, each time a
new pytest session. Starting and provisioning a chain per session would take most of the run,
so this starts one chain, passes it on as OPENDID_CHAIN_URL and lets the first session
provision it into OPENDID_PROVISIONED (conftest.py), which later sessions reuse. It is also a
pytest plugin (`-p opendid.devtools.mutation` in `[tool.mutmut]`): each mutant's tests run
with `-x`, so tests that need no chain run first and a mutant they kill costs no chain set-up.

    python -m opendid.devtools.mutation run [MUTANT_GLOB ...]   # fresh run (deletes mutants/)
    python -m opendid.devtools.mutation run --survivors          # re-test the last survivors
    python -m opendid.devtools.mutation run --focus stable       # 3 modules, focused tests
    python -m opendid.devtools.mutation summary                  # per-module table + survivors
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from opendid.devtools.devchain import PROJECT_ROOT, DevChain, shared_dir

MUTANTS = PROJECT_ROOT / "mutants"

# mutmut's exit-code meanings (mutmut/stats.py), folded into the columns of the summary.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          34: "skipped", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", None: "not checked"}
# Fixtures whose set-up reads the chain (conftest.py); tests without them are cheap.
CHAIN_FIXTURES = frozenset({"chain_url", "chain", "provisioned", "opendid", "wallet", "driver"})
COLUMNS = ("killed", "timeout", "survived", "no tests", "not checked", "other")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Only the OPENDID_MUTATION_TESTS files when set; chain-free tests first (a stable sort)."""
    focus = [f for f in os.environ.get("OPENDID_MUTATION_TESTS", "").split(",") if f]
    if focus:
        dropped = [i for i in items if not i.nodeid.startswith(tuple(focus))]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if i.nodeid.startswith(tuple(focus))]
    items.sort(key=lambda item: bool(CHAIN_FIXTURES & set(getattr(item, "fixturenames", ()))))


def survivors() -> list[str]:
    """The mutants the last run left alive (survived, or found no test)."""
    return [name for codes in results().values() for name, code in sorted(codes.items())
            if STATUS.get(code) in ("survived", "no tests")]


# `run --focus NAME`: a module group with the tests that pin it
# without an OpenDID server (a mutant then costs one chain client, not a server and a login).
FOCUS = {
    "stable": (["opendid.kilt.verification*", "opendid.kilt.credentials*",
                "opendid.store.onetime*"],
               ["tests/test_verification.py", "tests/test_verification_checks.py",
                "tests/test_credentials_and_messages.py", "tests/test_credential_checks.py",
                "tests/test_onetime_store.py"]),
    # the DID-only login token: parsing, claims, signature binding, replay key (offline tests)
    "didjwt": (["opendid.kilt.didjwt*"], ["tests/test_didjwt.py"]),
    # codes and tokens by hash, single-use redemption, rotation, revocation (real SQLite, offline)
    "grants": (["opendid.store.grants*"], ["tests/test_grant_store.py"]),
    # OpenDID-style and standard token claims, headers and keys (offline)
    "tokens": (["opendid.oidc.tokens*"], ["tests/test_token_claims.py", "tests/test_tokens.py"]),
}


def run(mutants: list[str], keep: bool, tests: list[str] | None = None) -> int:
    """A mutmut run against one fresh dev chain; prints the summary; mutmut's exit code.

    `tests`: only these test files (OPENDID_MUTATION_TESTS); a fresh run, since mutmut's cached
    results do not know which tests they came from."""
    if not keep:
        shutil.rmtree(MUTANTS, ignore_errors=True)
    mutmut = Path(sys.executable).with_name("mutmut")
    output = PROJECT_ROOT / "test-output"
    output.mkdir(exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="opendid-mutation-") as provisioned, \
            DevChain(log_file=output / "chopsticks-mutation.log") as chain:
        env = dict(os.environ, OPENDID_CHAIN_URL=chain.url, OPENDID_PROVISIONED=provisioned,
                   OPENDID_SHARED=str(shared_dir()),
                   OPENDID_MUTATION_TESTS=",".join(tests or []))
        code = subprocess.run([str(mutmut), "run", *mutants], cwd=PROJECT_ROOT, env=env,
                              check=False).returncode
    minutes = (time.monotonic() - started) / 60
    print()
    print(summary())
    print(f"\nmutmut exited with {code}; wall time {minutes:.1f} min")
    return code


def results() -> dict[str, dict[str, int | None]]:
    """Exit code per mutant name, per mutated source file, from mutmut's `.meta` files."""
    found: dict[str, dict[str, int | None]] = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        found[source] = json.loads(meta.read_text())["exit_code_by_key"]
    return found


def summary() -> str:
    """A Markdown table (killed / total per module) and the list of mutants not killed."""
    lines = ["| module | " + " | ".join(COLUMNS) + " | total | score |",
             "|---|" + "---:|" * (len(COLUMNS) + 2)]
    not_killed: list[str] = []
    totals: Counter[str] = Counter()
    for source, codes in results().items():
        counts = Counter(STATUS.get(code, "other") for code in codes.values())
        totals.update(counts)
        lines.append(_row(source, counts))
        not_killed += [f"{name}: {STATUS.get(code, f'exit {code}')}"
                       for name, code in sorted(codes.items())
                       if STATUS.get(code) not in ("killed", "timeout")]
    lines.append(_row("**all**", totals))
    lines += ["", "Not killed (`mutmut show NAME` prints the diff):"]
    lines += [f"- {entry}" for entry in not_killed] or ["- none"]
    return "\n".join(lines)


def _row(name: str, counts: Counter[str]) -> str:
    total = sum(counts.values())
    caught = counts["killed"] + counts["timeout"]
    score = f"{100 * caught / total:.1f}%" if total else "-"
    return (f"| {name} | " + " | ".join(str(counts[c]) for c in COLUMNS)
            + f" | {total} | {score} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m opendid.devtools.mutation")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run mutmut against one fresh dev chain")
    run_parser.add_argument("mutants", nargs="*",
                            help="mutant name globs, e.g. 'opendid.store.onetime*'")
    run_parser.add_argument("--keep", action="store_true",
                            help="keep mutants/ (re-test only what changed) instead of a fresh run")
    commands.add_parser("summary", help="print the per-module table from mutants/")
    run_parser.add_argument("--survivors", action="store_true",
                            help="keep mutants/ and re-test only the mutants that survived")
    run_parser.add_argument("--focus", choices=sorted(FOCUS),
                            help="a module group with its focused test selection")
    args = parser.parse_args()
    if args.command == "run":
        mutants, tests = FOCUS[args.focus] if args.focus else (args.mutants, None)
        if args.survivors:  # with the same --focus as the run it follows
            mutants = survivors()
            if not mutants:
                print("no survivors to re-test")
                return
        sys.exit(run(mutants, keep=args.keep or args.survivors, tests=tests))
    print(summary())


if __name__ == "__main__":
    main()

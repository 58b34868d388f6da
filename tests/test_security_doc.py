"""docs/security.md names, for each security rule, the tests that pin it: every test it names
must exist, so a renamed or deleted test cannot leave a rule silently unpinned."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"((?:e2e/)?test_\w+\.py)(?:::(\w+))?")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def _references(text: str) -> list[tuple[str, str | None]]:
    """(file, test) pairs; `::name` after a reference belongs to the file named before it."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        current: str | None = None
        for token in re.finditer(r"`([^`]+)`", line):
            value = token.group(1)
            match = REFERENCE.fullmatch(value)
            if match and value.startswith(("test_", "e2e/test_")):
                current = match.group(1)
                found.append((current, match.group(2)))
            elif value.startswith("::") and current:
                found.append((current, value[2:]))
    return found


def test_every_test_the_security_note_names_exists():
    text = (ROOT / "docs" / "security.md").read_text()
    references = _references(text)
    assert len(references) > 40
    missing = []
    for file, name in references:
        path = ROOT / file if file.startswith("e2e/") else ROOT / "tests" / file
        if not path.exists():
            missing.append(file)
        elif name and name not in _tests_in(path):
            missing.append(f"{file}::{name}")
    assert not missing, missing

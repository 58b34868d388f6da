"""How deep a parsed JSON value nests, walked without recursion: Python's own recursion (json,
repr, pydantic, our code) fails a few hundred levels deep, so a value is measured before
anything walks it. One walker for the wallet's decrypted messages and the web's request bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def json_depth(value: object, limit: int, check_text: Callable[[str], None] | None = None) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, `[]` is 1); the walk stops at the
    first level past `limit`, so the result is exact up to `limit + 1`. `check_text` sees every
    string and key on the way (it raises to refuse one)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if check_text is not None:
                check_text(item)
            continue
        if isinstance(item, dict):
            if check_text is not None:
                for key in item:
                    check_text(key)
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > limit:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest

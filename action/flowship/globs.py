"""The one glob rule of `[tool.flowship]` paths (data globs, image context globs).

gitignore-like and anchored at the repository root: `*` and `?` stay within
one path segment, `**/` crosses directories, and a pattern naming a directory
covers everything below it. The planner (what a change affects) and the
image build (what goes into the context) must agree, so both use this.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    # A pattern that names a directory covers everything below it.
    return re.compile("".join(out).rstrip("/") + "(?:/.*)?")


def glob_match(pattern: str, path: str) -> bool:
    """gitignore-like globs, anchored at the repository root: `*`, `?`, `[...]`, `**/`."""
    return _glob_regex(pattern.lstrip("/").removeprefix("./")).fullmatch(path) is not None

"""The one glob rule of `[tool.flowship]` paths (data globs, image context globs).

gitignore-like and anchored at the repository root: `*` and `?` stay within
one path segment, `**/` crosses directories, and a pattern naming a directory
covers everything below it. The planner (what a change affects) and the
image build (what goes into the context) must agree, so both use this.

Matching takes time linear in the path for any pattern: a pattern comes from
pyproject.toml, which a pull request may change, and a backtracking regex of
several `*` (`**a**a**a...`) takes exponential time. A pattern with at most
one wildcard run is a regex (no backtracking to speak of, and fast); any
other is matched by a small NFA that keeps the set of live pattern positions.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

# Token kinds: a literal character, `?`, a `[...]` class, `*`, `**` and `**/`.
_LIT, _ONE, _CLASS, _STAR, _ANY, _DIRS = range(6)


class GlobError(ValueError):
    """A pattern that cannot be a glob; the message is one sentence."""


@dataclass(frozen=True)
class _Glob:
    tokens: tuple[tuple[int, str, re.Pattern[str] | None], ...]
    prefix: str  # the literal characters every match starts with
    regex: re.Pattern[str] | None  # set when the pattern has at most one wildcard run


def check(pattern: str) -> None:
    """Raise `GlobError` when `pattern` is not a valid glob (a class like `[z-a]`)."""
    _compile(_normal(pattern))


def glob_match(pattern: str, path: str) -> bool:
    """gitignore-like globs, anchored at the repository root: `*`, `?`, `[...]`, `**/`."""
    glob = _compile(_normal(pattern))
    if not path.startswith(glob.prefix):
        return False
    if glob.regex is not None:
        return glob.regex.fullmatch(path) is not None
    return _run(glob.tokens, path)


def _normal(pattern: str) -> str:
    return pattern.lstrip("/").removeprefix("./")


@lru_cache(maxsize=256)
def _compile(pattern: str) -> _Glob:
    tokens: list[tuple[int, str, re.Pattern[str] | None]] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            tokens.append((_DIRS, "(?:[^/]+/)*", None))
            i += 3
        elif pattern.startswith("**", i):
            tokens.append((_ANY, ".*", None))
            i += 2
        elif pattern[i] == "*":
            tokens.append((_STAR, "[^/]*", None))
            i += 1
        elif pattern[i] == "?":
            tokens.append((_ONE, "[^/]", None))
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            text = "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            try:
                with warnings.catch_warnings():  # "possible nested set": a class is read as Python reads it today
                    warnings.simplefilter("ignore", FutureWarning)
                    tokens.append((_CLASS, text, re.compile(text)))
            except re.error as exc:
                raise GlobError(f"{pattern!r} is not a valid glob: the class {pattern[i:end + 1]} is invalid ({exc}).") from None
            i = end + 1
        else:
            tokens.append((_LIT, pattern[i], None))
            i += 1
    # A pattern that names a directory covers everything below it (the trailing `/` is dropped).
    while tokens and tokens[-1][:2] == (_LIT, "/"):
        tokens.pop()
    prefix = ""
    for kind, text, _ in tokens:
        if kind != _LIT:
            break
        prefix += text
    runs = sum(1 for n, t in enumerate(tokens) if t[0] in (_STAR, _ANY, _DIRS)
               and (n == 0 or tokens[n - 1][0] not in (_STAR, _ANY, _DIRS)))
    regex = None
    if runs <= 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            regex = re.compile("".join(re.escape(t) if k == _LIT else t for k, t, _ in tokens) + "(?:/.*)?")
    return _Glob(tuple(tokens), prefix, regex)


def _run(tokens: tuple[tuple[int, str, re.Pattern[str] | None], ...], path: str) -> bool:
    """An NFA over pattern positions: state `n` is "tokens[:n] matched", `~n` is "inside a `**/` segment"."""
    end = len(tokens)
    below = end + 1  # matched the pattern, then `/`: everything below a directory matches

    def closure(states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            n = todo.pop()
            if 0 <= n < end and tokens[n][0] in (_STAR, _ANY, _DIRS) and n + 1 not in states:
                states.add(n + 1)  # each wildcard may match nothing
                todo.append(n + 1)
        return states

    states = closure({0})
    for ch in path:
        nxt: set[int] = set()
        for n in states:
            if n == below:
                nxt.add(below)
                continue
            if n < 0:  # inside a `**/` segment of token ~n
                m = ~n
                nxt.add(m if ch == "/" else n)
                continue
            if n == end:
                if ch == "/":
                    nxt.add(below)
                continue
            kind, text, klass = tokens[n]
            if kind == _LIT:
                if ch == text:
                    nxt.add(n + 1)
            elif kind == _ONE:
                if ch != "/":
                    nxt.add(n + 1)
            elif kind == _CLASS:
                if klass is not None and klass.fullmatch(ch):
                    nxt.add(n + 1)
            elif kind == _STAR:
                if ch != "/":
                    nxt.add(n)
            elif kind == _ANY:
                nxt.add(n)
            elif kind == _DIRS and ch != "/":
                nxt.add(~n)
        if not nxt:
            return False
        states = closure(nxt)
    return end in states or below in states

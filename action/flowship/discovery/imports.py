"""The repository's import graph, read statically and fast.

Scanning: rather than parsing whole modules (≈150 µs each, too slow for a
20,000-module cold start), a regex finds every statement that starts with
`import`/`from` (at a line start, or after `;` or `:`, at any indentation, so
imports inside functions and `try:` blocks count) and only those logical lines
are parsed with `ast`. Literal `importlib.import_module("a.b")` and
`__import__("a.b")` calls count too. A line inside a string that happens to
look like an import may add an edge that does not exist; that only errs
toward redeploying, never toward missing a change.

Resolution (documented in docs/changes.md): an absolute import `a.b.c` is
looked up under every import root (the repository root, the flows directory
and `src/` when it exists), every match counting; `from a.b import c` also
counts `a/b/c.py` when `c` is a submodule; relative imports resolve against
the importing file's directory. Every module also depends on the
`__init__.py` of each package above it (Python runs them first), so
importing `a.b.c` reaches `a/__init__.py` and `a/b/__init__.py`.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable

# (level, module, names): `import a.b` -> (0, "a.b", ()); `from ..x import y` -> (2, "x", ("y",)).
RawImport = tuple[int, str, tuple[str, ...]]

_START = re.compile(rb"(?:^|[;:])[ \t]*(?:import|from)[ \t\\(.]", re.M)
# `import a.b as c, d` and `from a.b import c as d, e` (ASCII names, one line), read without ast.
_NAME = rb"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rb"%s(?:\.%s)*" % (_NAME, _NAME)
_ALIASED = rb"%s(?: as %s)?" % (_DOTTED, _NAME)
_SIMPLE_IMPORT = re.compile(rb"import ((?:%s)(?:, ?%s)*)[ \t]*(?:#.*)?$" % (_ALIASED, _ALIASED))
_SIMPLE_FROM = re.compile(
    rb"from (%s) import ((?:%s)(?:, ?%s)*|\*)[ \t]*(?:#.*)?$" % (_DOTTED, _ALIASED, _ALIASED)
)
_AS = re.compile(rb" as %s|[ \t]" % _NAME)
_DYNAMIC = re.compile(rb"""(?:import_module|__import__)\(\s*(?:name\s*=\s*)?['"]([\w.]+)['"]""")


def scan_imports(source: bytes) -> tuple[RawImport, ...]:
    """Every import statement of a module, in order, without parsing the module."""
    if b"import" not in source:
        return ()
    found: list[RawImport] = []
    for match in _START.finditer(source):
        start = match.start()
        if source[start:start + 1] in (b";", b":"):
            start += 1
        snippet = _logical_line(source, start).strip()
        simple = _SIMPLE_IMPORT.match(snippet)
        if simple:  # most imports need no parser at all
            found.extend((0, m.decode("ascii"), ()) for m in _AS.sub(b"", simple.group(1)).split(b","))
            continue
        simple = _SIMPLE_FROM.match(snippet)
        if simple:
            names = tuple(n.decode("ascii") for n in _AS.sub(b"", simple.group(2)).split(b","))
            found.append((0, simple.group(1).decode("ascii"), names))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                tree = ast.parse(snippet)
        except (SyntaxError, ValueError):
            continue  # prose in a docstring, not an import
        except (RecursionError, MemoryError):
            continue  # a line nested beyond the parser: no import a module could run
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.extend((0, alias.name, ()) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.append((node.level, node.module or "", tuple(a.name for a in node.names)))
    for match in _DYNAMIC.finditer(source):
        found.append((0, match.group(1).decode("ascii"), ()))
    return tuple(dict.fromkeys(found))


def _logical_line(source: bytes, start: int) -> bytes:
    """From `start` to the end of its logical line: through `(...)`, backslashes, up to `;`.

    The only bracket an import statement has is `from m import (...)`, and
    inside it only names, commas, whitespace and comments; the walk stops at
    anything else. So each walk ends by the next statement at the latest and
    a file of many unclosed `import (` costs linear time, not quadratic.
    """
    end = source.find(b"\n", start)
    end = len(source) if end < 0 else end
    line = source[start:end]
    if b"(" not in line and b"\\" not in line and b";" not in line:
        return line  # the common case: one plain line
    inside = False
    i = start
    n = len(source)
    while i < n:
        c = source[i]
        if c == 0x23:  # '#': a comment runs to the end of the line
            nl = source.find(b"\n", i)
            i = n if nl < 0 else nl
            continue
        if c == 0x5C and source[i + 1:i + 2] == b"\n":  # a backslash continuation
            i += 2
            continue
        if c == 0x28:
            if inside:
                break  # no import nests brackets: this is no import
            inside = True
        elif c == 0x29:
            if not inside:
                break
            inside = False
        elif inside:
            if c not in _IN_LIST:
                break
        elif c in (0x3B, 0x0A):  # ';' or a newline ends the statement
            break
        i += 1
    return source[start:i].replace(b"\\\n", b" ")


# What may stand between `import (` and `)`: names (ASCII or not), `as`, commas, whitespace.
_IN_LIST = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_, \t\r\n\x0c") | frozenset(range(0x80, 0x100))


class Resolver:
    """Maps a module's raw imports to the repository files they name.

    An import names one file per match: `a.b.c` -> `a/b/c.py` or
    `a/b/c/__init__.py` under each import root. The packages on the way
    (`a/__init__.py`, `a/b/__init__.py`) are reached through `parents`: every
    module depends on the `__init__.py` of each package directory above it,
    which is what Python executes before it and keeps the graph small.
    """

    def __init__(self, files: Iterable[str], roots: Iterable[str]):
        self.files = frozenset(files)
        self.roots = tuple(dict.fromkeys(r.strip("/") for r in roots))
        # "a/b/c" -> the files that module path names (c.py and/or c/__init__.py).
        self.stems: dict[str, tuple[str, ...]] = {}
        for path in self.files:
            stem = path[:-12] if path.endswith("/__init__.py") else path[:-3]
            self.stems[stem] = (*self.stems.get(stem, ()), path)
        # First components of every module path under every root: a fast "not ours" test.
        self.tops = set()
        for stem in self.stems:
            for root in self.roots:
                if not root:
                    self.tops.add(stem.partition("/")[0])
                elif stem.startswith(root + "/"):
                    self.tops.add(stem[len(root) + 1:].partition("/")[0])
        self._memo: dict[tuple, tuple[str, ...]] = {}

    def parents(self, path: str) -> list[str]:
        """The `__init__.py` of each package directory above `path` (nearest first)."""
        found = []
        directory = path.rpartition("/")[0]
        if path.endswith("/__init__.py"):
            directory = directory.rpartition("/")[0]
        while directory:
            init = directory + "/__init__.py"
            if init in self.files:
                found.append(init)
            directory = directory.rpartition("/")[0]
        return found

    def _stems(self, stems: Iterable[str]) -> tuple[str, ...]:
        found: list[str] = []
        for stem in stems:
            found.extend(self.stems.get(stem, ()))
        return tuple(found)

    def resolve(self, path: str, raw: RawImport) -> tuple[str, ...]:
        level, module, names = raw
        if level == 0:
            if module.partition(".")[0] not in self.tops:
                return ()  # the standard library or an installed package
            memo = self._memo.get(raw)
            if memo is None:
                parts = module.split(".")
                # Every package on the way too: even where the module itself is missing
                # (a broken import), its packages' __init__ runs first.
                chains = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
                stems = [f"{root}/{chain}" if root else chain for root in self.roots for chain in chains]
                top = [f"{root}/{chains[-1]}" if root else chains[-1] for root in self.roots]
                stems += [f"{b}/{name}" for b in top for name in names if name != "*"]
                memo = self._memo[raw] = self._stems(stems)
            return memo
        directory = path.rpartition("/")[0]
        for _ in range(level - 1):
            if not directory:
                return ()  # beyond the top: Python raises ImportError
            directory = directory.rpartition("/")[0]
        parts = module.split(".") if module else []
        chains = ["/".join(p for p in (directory, *parts[:i]) if p) for i in range(len(parts) + 1)]
        base = chains[-1]
        stems = [c for c in chains if c]
        stems += [f"{base}/{name}" if base else name for name in names if name != "*"]
        return self._stems(stems)

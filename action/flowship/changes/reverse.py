"""Who imports the changed modules: the import graph searched backwards from them.

A one-file change needs only the modules whose import closure holds that
file. Rather than resolving every import of the repository (what
`flowship.changes.graph` does), the search starts at the changed modules and, level
by level, finds the files that could import the current ones with a cheap
word filter, scans and resolves only those exactly as the full graph would,
and keeps the real importers, until nothing new is found.

Why the filter never drops an importer. Every file an import resolves to
(`flowship.discovery.imports.Resolver`) is named by words of the importing statement.
For a target whose module path is `P/c` (`P/c.py` or `P/c/__init__.py`), the
statement writes the word `c`, and also `b`, the last part of `P`, except
when `P` is an import root (`import c`) or the import is relative from inside
`P` (`from . import c`, so the importer lies under `P/`). A file's import
text (`import_lines`) is each line from `import` or `from` to its end, or the
whole file when such a line continues (a `(` or a backslash). So a file is a
candidate when its import text holds the word `c` and either lies under `P/`,
or `P` is a root, or `b` comes before `c` on one line (anywhere in the file
when the text is the whole file). Besides imports, every module depends on
the `__init__.py` of each package above it, so a changed `__init__.py` brings
in every module below it.

One blind spot, shared with reading bytes for names at all: Python folds
non-ASCII identifiers (NFKC), so `import ｍ5` (full-width letters) imports
`m5`; targets with non-ASCII names make the search give up (`TooBroad`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from flowship.discovery.imports import Resolver, scan_imports

LIMIT = 5000  # modules in the closure beyond which the full (cached, parallel) graph is the better tool
_FROM = re.compile(rb"from[ \t\\(.][^\n]*")
_IMPORT = re.compile(rb"import[^\n]*")  # also import_module(...) and __import__(...)
_WORD = re.compile(r"[A-Za-z0-9_]+")
# Every byte that cannot be part of an ASCII identifier becomes a space, so that `split()` gives words.
_WORDS_ONLY = bytes(c if chr(c).isascii() and (chr(c).isalnum() or c == 0x5F) else 0x20 for c in range(256))


class TooBroad(Exception):
    """The closure is large, or a name is not plain ASCII: the full graph is the better tool."""


def import_lines(source: bytes) -> tuple[bytes, bool]:
    """The text of a module's import statements (a superset), and whether that is the whole file.

    Each line from `from` or `import` to its end; the whole file when such a
    line continues on the next ones (a `(` or a backslash).
    """
    if b"import" not in source:
        return b"", False
    text = b"\n".join(_FROM.findall(source) + _IMPORT.findall(source))
    if b"(" in text or b"\\" in text:
        return source, True
    return text, False


def _stem(path: str) -> str:
    return path[:-12] if path.endswith("/__init__.py") else path[:-3]


class ReverseSearch:
    def __init__(self, paths: Iterable[str], roots: Sequence[str], limit: int = LIMIT):
        """`paths`: the Python files imports may name (head's and deleted ones)."""
        paths = list(paths)
        self.resolver = Resolver(paths, roots)
        self.roots = set(self.resolver.roots)
        self.limit = limit
        # Only words that name a file or a directory can be a `c` or a `b`: the index keeps just those.
        parts = {part for path in paths for part in _stem(path).split("/")}
        self.vocabulary = {part.encode() for part in parts if part.isascii()}
        self.sources: dict[str, bytes] = {}  # head's modules, by path
        self.lines: dict[str, bytes | None] = {}  # path -> import_lines, None where that is the whole file
        self.holders: dict[bytes, list[str]] = {}  # word -> the modules whose import lines hold it
        self.existing: list[str] = []
        self.targets: dict[str, set[str]] = {}  # scanned file -> the files its imports name

    def read(self, modules: Iterable[tuple[Sequence[str], bytes]]) -> None:
        """Take in head's modules (the paths that share one content, and the content) as they arrive."""
        holders = self.holders
        for paths, source in modules:
            text, whole = import_lines(source)
            for path in paths:
                self.sources[path] = source
                self.lines[path] = None if whole else text
            for word in self.vocabulary.intersection(text.translate(_WORDS_ONLY).split()):
                if word in holders:
                    holders[word].extend(paths)
                else:
                    holders[word] = list(paths)
        self.existing = sorted(self.sources)

    def dependents(self, changed: Iterable[str]) -> dict[str, set[str]]:
        """Every file reached from `changed` backwards (each changed file too) -> the changed files that reach it."""
        changed = sorted(set(changed))
        closure = set(changed)
        frontier = list(changed)
        while frontier:
            candidates = self._candidates(frontier) - closure
            if len(closure) + len(candidates) > self.limit:
                raise TooBroad(f"more than {self.limit} modules")
            self._scan(candidates)
            frontier = sorted(f for f in candidates if self.targets[f] & closure)
            closure.update(frontier)
        self._scan(p for p in closure if p in self.sources)
        return self._attribute(changed, closure)

    def _candidates(self, frontier: list[str]) -> set[str]:
        found: set[str] = set()
        wanted: list[tuple[str, bytes, bytes | None]] = []  # (P, c, b)
        for target in frontier:
            if target.endswith("/__init__.py"):  # every module below a package runs its __init__ first
                below = target[:-11]
                found.update(p for p in self.existing if p.startswith(below))
            parent, _, last = _stem(target).rpartition("/")
            if not last.isascii():
                raise TooBroad(f"{target} has a non-ASCII name")
            if not _WORD.fullmatch(last):
                continue  # `my-module.py`: no import statement can name it
            before = None if not parent or parent in self.roots else parent.rpartition("/")[2]
            if before is not None and not (before.isascii() and _WORD.fullmatch(before)):
                before = None  # a directory no import spells: every holder of `c` is a candidate
            wanted.append((parent, last.encode(), before.encode() if before is not None else None))
        for parent, c, b in wanted:
            holders = self.holders.get(c, ())
            if b is None:
                found.update(holders)
                continue
            with_b = set(self.holders.get(b, ()))
            prefix = parent + "/"
            # Where every import is one line, `b` and `c` name the target on the same line, in that order.
            same_line = re.compile(rb"(?<!\w)%s(?!\w)[^\n]*(?<!\w)%s(?!\w)" % (b, c)).search
            for path in holders:
                if path.startswith(prefix):
                    found.add(path)
                elif path in with_b:
                    lines = self.lines[path]
                    if lines is None or same_line(lines):
                        found.add(path)
        return found

    def _scan(self, paths: Iterable[str]) -> None:
        resolver = self.resolver
        for path in sorted(p for p in paths if p not in self.targets):
            found = set(resolver.parents(path))
            for raw in scan_imports(self.sources[path]):
                found.update(resolver.resolve(path, raw))
            found.discard(path)
            self.targets[path] = found

    def _attribute(self, changed: list[str], closure: set[str]) -> dict[str, set[str]]:
        importers: dict[str, list[str]] = {}
        for path in closure:
            for target in self.targets.get(path, ()):
                if target in closure:
                    importers.setdefault(target, []).append(path)
        reached: dict[str, set[str]] = {}
        for start in changed:
            seen = {start}
            stack = [start]
            while stack:
                for parent in importers.get(stack.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            for path in seen:
                reached.setdefault(path, set()).add(start)
        return reached

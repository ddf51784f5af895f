"""Parse results cached by git blob sha, so planning reads each file's bytes once, ever.

A blob sha names exact content, so an entry can never be stale; the cache
only needs a version for the analysers' own code (`VERSION`). It lives in
`$FLOWSHIP_CACHE_DIR` when set (restore it with actions/cache in CI), else in
`<git dir>/flowship/`. Each kind of result is one file, loaded only when a
plan needs it, written with `marshal` (plain tuples, the fastest format the
standard library reads) and atomically replaced; a missing or corrupt file is
an empty cache. Entries for blobs neither in the planned commit nor used by
this run are dropped on write, so the cache stays the size of the tree.
"""

from __future__ import annotations

import marshal
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

VERSION = 2  # 2: flow names must be written verbatim


def load(path: Path | None) -> Any:
    """What `store` wrote at `path`, or None when it is missing, corrupt or of another version."""
    if path is None:
        return None
    try:
        data = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if isinstance(data, dict) and data.get("version") == VERSION:
        return data.get("data")
    return None


def store(path: Path | None, data: Any) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            marshal.dump({"version": VERSION, "data": data}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only checkout plans as well, only slower next time


class ParseCache:
    def __init__(self, directory: Path | None):
        self.directory = directory
        self.tables: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self.used: set[str] = set()  # blobs asked for in this run: kept when pruning

    @classmethod
    def for_repo(cls, cache_dir: str | None, git_dir: Path | None) -> ParseCache:
        if cache_dir:
            return cls(Path(cache_dir))
        return cls(git_dir / "flowship" if git_dir is not None else None)

    def file(self, name: str) -> Path | None:
        return self.directory / f"{name}-v{VERSION}.marshal" if self.directory is not None else None

    def table(self, kind: str) -> dict[str, Any]:
        if kind not in self.tables:
            data = load(self.file(f"parse-{kind}"))
            self.tables[kind] = data if isinstance(data, dict) else {}
        return self.tables[kind]

    def get_many(
        self,
        kind: str,
        blobs: dict[str, str],
        read: Callable[[Iterable[str]], dict[str, bytes]],
        compute: Callable[[dict[str, bytes]], dict[str, Any]],
    ) -> dict[str, Any]:
        """path -> cached result for each (path, blob sha); missing blobs are read and computed."""
        table = self.table(kind)
        self.used.update(blobs.values())
        missing = {sha for sha in blobs.values() if sha not in table}
        if missing:
            table.update(compute(read(missing)))
            self.dirty.add(kind)
        return {path: table[sha] for path, sha in blobs.items() if sha in table}

    def save(self, keep: Iterable[str] = ()) -> None:
        """Write what changed, keeping only entries for the blobs in `keep` or used in this run."""
        keep = set(keep) | self.used
        for kind in sorted(self.dirty):
            table = {k: v for k, v in self.tables[kind].items() if k in keep}
            store(self.file(f"parse-{kind}"), table)
        self.dirty.clear()

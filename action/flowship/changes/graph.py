"""The head commit's import graph, kept between runs so a warm plan resolves almost nothing.

Resolving 150,000 imports of 20,000 modules is most of a plan's time. The
resolved edges of a module depend only on its path, its content (blob sha)
and the set of Python files that exist, so the forward graph (as indexes into
the sorted list of paths) is stored with that set's signature and each
module's blob. The next plan with the same set of files re-resolves only the
modules whose blob changed; a plan where files were added or removed (or
that has a deleted module in play) resolves everything again.

Like the parse cache, the stored graph is untrusted input (see `flowship.discovery.cache`):
one of another shape, or whose edges point outside the list of paths, is
ignored and the graph is resolved again, never a crash nor a wrong edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from flowship.discovery import cache
from flowship.discovery.imports import RawImport, Resolver


def _signature(paths: Sequence[str], roots: Sequence[str]) -> str:
    digest = hashlib.sha1("\0".join(roots).encode())
    digest.update("\0".join(paths).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


class ImportGraph:
    """Reverse edges over the head's Python files, with the deleted ones they may still import."""

    def __init__(self, paths: list[str], importers: list[list[int]]):
        self.paths = paths
        self.index = {p: i for i, p in enumerate(paths)}
        self.importers = importers

    def dependents(self, changed: str) -> set[str]:
        """Every file that imports `changed`, directly or through others (and `changed` itself)."""
        start = self.index.get(changed)
        if start is None:
            return {changed}
        seen = {start}
        stack = [start]
        importers = self.importers
        while stack:
            for parent in importers[stack.pop()]:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return {self.paths[i] for i in seen}


def _saved(data: object, signature: str, size: int) -> tuple[list[str], list[tuple[int, ...]]] | None:
    """The stored (blobs, targets) when `data` is a graph of exactly these paths, else None.

    Every edge must be an index into the paths: a negative one would quietly
    name another module (Python counts from the end) and a large one crash.
    """
    if type(data) is not dict or data.get("signature") != signature:
        return None
    blobs, targets = data.get("blobs"), data.get("targets")
    if type(blobs) is not list or type(targets) is not list or len(blobs) != size or len(targets) != size:
        return None
    if not all(type(b) is str for b in blobs):
        return None
    edges: list[tuple[int, ...]] = []
    for outgoing in targets:
        if type(outgoing) is not list or not all(type(t) is int and 0 <= t < size for t in outgoing):
            return None
        edges.append(tuple(outgoing))
    return blobs, edges


def build(
    files: Mapping[str, str],
    head_py: list[str],
    deleted_py: Iterable[str],
    roots: Sequence[str],
    raw_imports: Callable[[list[str]], Mapping[str, tuple[RawImport, ...]]],
    store: Path | None,
) -> ImportGraph:
    """The graph of `head_py` (plus `deleted_py` as targets); `files` maps paths to blob shas."""
    paths = sorted({*head_py, *deleted_py})
    signature = _signature(paths, roots)
    blobs = [files.get(p, "") for p in paths]
    saved = _saved(cache.load(store), signature, len(paths))
    if saved is not None:
        old_blobs, targets = saved
        differ = [i for i, (old, new) in enumerate(zip(old_blobs, blobs, strict=True)) if old != new]
    else:
        targets = [()] * len(paths)
        differ = list(range(len(paths)))
    # A module deleted since (it stays a node, as a target) has no content, so it imports nothing.
    stale = [i for i in differ if paths[i] in files]
    for i in differ:
        if paths[i] not in files:
            targets[i] = ()
    if differ:
        resolver = Resolver(paths, roots)
        index = {p: i for i, p in enumerate(paths)}
        raws = raw_imports([paths[i] for i in stale])
        for i in stale:
            path = paths[i]
            found = set(resolver.parents(path))
            for raw in raws.get(path, ()):
                found.update(resolver.resolve(path, raw))
            found.discard(path)
            targets[i] = tuple(sorted(index[t] for t in found))
        cache.store(store, {"signature": signature, "blobs": blobs, "targets": targets})
    importers: list[list[int]] = [[] for _ in paths]
    for i, outgoing in enumerate(targets):
        for t in outgoing:
            importers[t].append(i)
    return ImportGraph(paths, importers)

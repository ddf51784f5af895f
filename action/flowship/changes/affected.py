"""What changed paths affect: the workflows and image families each changed path reaches.

Two ways to the same answer (the rules are in `flowship.changes` and
docs/changes.md):

- `analyse_partial`, for an ordinary commit: searches the import graph
  backwards from the changed modules (`flowship.changes.reverse`) and parses only the
  flow files that search reaches, plus those that could share their names
  (`discover_partly`). It declines (returns None) when the answer involves
  every workflow or many of them: the `[tool.flowship]` table changed, an
  image input changed (every workflow of a family), or the changed modules
  are imported by too much of the repository.
- `analyse_changes`, over the full discovery and the full import graph
  (`flowship.changes.graph`, cached between runs): everything else.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowship import git
from flowship.discovery.cache import ParseCache
from flowship.config import PYPROJECT, Config
from flowship.globs import glob_match
from flowship.discovery import CommitTree, Discovery, analysed, discover_partly, python_files
from flowship.changes.graph import build as build_graph
from flowship.images.inputs import family_inputs
from flowship.discovery.imports import scan_imports
from flowship.changes.reverse import ReverseSearch, TooBroad
from flowship.workflow import AwsEcsImage


@dataclass
class Analysis:
    """Changed paths that reach each workflow and image family."""

    workflows: dict[str, set[str]] = field(default_factory=dict)  # flow name -> reasons
    images: dict[str, set[str]] = field(default_factory=dict)  # family -> reasons
    everything: str | None = None  # the reason everything is affected, if it is
    notes: list[str] = field(default_factory=list)


def analyse_partial(
    config: Config, tree: CommitTree, base_sha: str, changes: Sequence[git.Change],
    base_names: Iterable[str], cache: ParseCache | None,
) -> tuple[Analysis, Discovery] | None:
    """The analysis, and a discovery that is exact for every workflow it names (and for `base_names`)."""
    changed = _changed_paths(changes)
    if PYPROJECT in changed and _config_changed(config, base_sha, tree):
        return None  # everything is affected
    families = set(config.images) | {image.value for image in AwsEcsImage}
    if any(glob_match(pattern, p) for f in families for pattern in family_inputs(config, f) for p in changed):
        return None  # every workflow of a family: the full discovery
    reached: dict[str, set[str]] = {}
    sources = None
    changed_py = [p for p in changed if p.endswith(".py")]
    if changed_py:
        head_py, deleted_py, roots = _graph_files(config, tree, changed_py)
        search = ReverseSearch([*head_py, *deleted_py], roots)
        by_blob: dict[str, list[str]] = {}
        for path in head_py:
            by_blob.setdefault(tree.files[path], []).append(path)
        # Streamed: git inflates the next blobs while this process reads the words of the last ones.
        search.read((by_blob[sha], data) for sha, data in git.stream_blobs(tree.root, by_blob))
        sources = search.sources
        try:
            reached = search.dependents(changed_py)
        except TooBroad:
            return None
    flow_files = set(python_files(tree, config.flows))
    data_names = {n for pattern, names in config.data.items() if any(glob_match(pattern, p) for p in changed)
                  for n in names}
    found = discover_partly(
        tree, config.flows, [p for p in reached if p in flow_files], {*data_names, *base_names}, cache, sources
    )
    analysis = Analysis()
    by_file = {r.file: r.name for r in found.records}
    for path, reasons in reached.items():
        if path in by_file:
            analysis.workflows.setdefault(by_file[path], set()).update(reasons)
    _data(config, changed, {r.name for r in found.records}, analysis)
    return analysis, found


def analyse_changes(
    config: Config, tree: CommitTree, base_sha: str, changes: Sequence[git.Change],
    found: Discovery, cache: ParseCache | None,
) -> Analysis:
    analysis = Analysis()
    changed = _changed_paths(changes)
    if PYPROJECT in changed and _config_changed(config, base_sha, tree):
        analysis.everything = PYPROJECT
    by_file = {r.file: r.name for r in found.records}

    changed_py = [p for p in changed if p.endswith(".py")]
    if changed_py:
        head_py, deleted_py, roots = _graph_files(config, tree, changed_py)
        imports = build_graph(
            tree.files, head_py, deleted_py, roots,
            lambda paths: _raw_imports(tree, paths, cache), cache.file("graph") if cache else None,
        )
        for path in changed_py:
            for dependent in imports.dependents(path):
                name = by_file.get(dependent)
                if name is not None:
                    analysis.workflows.setdefault(name, set()).add(path)

    _data(config, changed, set(by_file.values()), analysis)

    for family in {r.workflow.machine.family for r in found.records}:
        hits = {p for p in changed for pattern in family_inputs(config, family) if glob_match(pattern, p)}
        if hits:
            analysis.images[family] = hits
            for record in found.records:
                if record.workflow.machine.family == family:
                    analysis.workflows.setdefault(record.name, set()).update(hits)
    return analysis


def _changed_paths(changes: Sequence[git.Change]) -> list[str]:
    """Every path a change touches: a rename's old path too (what was there may have mattered)."""
    return sorted({p for c in changes for p in (c.path, c.old_path) if p})


def _graph_files(config: Config, tree: CommitTree, changed_py: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """The import graph's nodes (head's Python files, the deleted changed ones) and its import roots."""
    head_py = python_files(tree, "")
    # Deleted modules stay in the graph: a flow still importing one is broken, hence affected.
    deleted_py = [p for p in changed_py if p not in tree.files]
    return head_py, deleted_py, import_roots(config, [*tree.files, *deleted_py])


def _data(config: Config, changed: Sequence[str], names: set[str], analysis: Analysis) -> None:
    """`[tool.flowship.data]`: changed data files affect the flows their globs name."""
    for pattern, flows in config.data.items():
        hits = [p for p in changed if glob_match(pattern, p)]
        for name in flows if hits else ():
            if name in names:
                analysis.workflows.setdefault(name, set()).update(hits)
            else:
                analysis.notes.append(f"[tool.flowship] data {pattern!r} names {name!r}, which is no workflow")


def _raw_imports(tree: CommitTree, paths: list[str], cache: ParseCache | None) -> dict[str, Any]:
    if len(paths) < 200:  # a warm graph needs a handful: scanning them beats loading the cache
        blobs = tree.read(tree.files[p] for p in paths)
        return {p: scan_imports(blobs.get(tree.files[p], b"")) for p in paths}
    return analysed(tree, "imports", paths, cache)


def import_roots(config: Config, files: Iterable[str]) -> list[str]:
    """Where absolute imports are looked up: the repository root, the flows directory, `src/`."""
    roots = ["", config.flows]
    if any(p.startswith("src/") for p in files):
        roots.append("src")
    return roots


def _config_changed(config: Config, base_sha: str, tree: CommitTree) -> bool:
    """Whether `[tool.flowship]` differs; the rest of pyproject.toml does not matter."""
    def table(data: bytes | None) -> Any:
        try:
            return tomllib.loads(data.decode("utf-8")).get("tool", {}).get("flowship") if data else None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return "(invalid)"

    return table(git.show(config.root, base_sha, PYPROJECT)) != table(tree.read_path(PYPROJECT))

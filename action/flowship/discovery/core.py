"""Static discovery of workflows under the flows directory (no flow code is imported).

Pairing rule: a module declares at most one workflow, a module-level
`Workflow(...)`. It belongs to the module's only `@flow` function, or, when
the module has several, to the one named by `Workflow(..., flow="fn")`.
Every `.py` file under the flows directory is read; modules without a
`Workflow(...)` are helpers and are skipped quietly. Problems (syntax errors,
unreadable declarations, invalid machines, missing or ambiguous flows,
duplicate names) are reported at `file:line` and never hide the good
workflows.

Discovery works on a `Tree`: the working tree (`discover`) or the blobs of a
commit (`CommitTree`, what `plan` reads), the latter cached by blob sha.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flowship import git
from flowship.discovery import limits
from flowship.discovery.cache import ParseCache
from flowship.config import Config
from flowship.discovery.declarations import NOT_AT_TOP, ModuleFacts, analyze
from flowship.errors import InputError, Problem
from flowship.discovery.imports import scan_imports
from flowship.workflow import Workflow

_PARALLEL_FROM = 1500  # below this many files a process pool costs more than it saves


@dataclass(frozen=True)
class WorkflowRecord:
    """One discovered workflow: a module's `Workflow(...)` paired with its `@flow`."""

    name: str  # the Prefect flow name
    file: str  # repo-relative POSIX path
    line: int  # line of the Workflow(...) declaration
    function: str  # the @flow function's name
    workflow: Workflow

    @property
    def entrypoint(self) -> str:
        return f"{self.file}:{self.function}"

    def to_json(self) -> dict:
        return {"name": self.name, "file": self.file, "line": self.line, "entrypoint": self.entrypoint,
                **self.workflow.entry_json()}


@dataclass(frozen=True)
class Discovery:
    records: list[WorkflowRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def by_name(self) -> dict[str, WorkflowRecord]:
        return {r.name: r for r in self.records}

    def to_json(self) -> dict[str, Any]:
        return {
            "workflows": [r.to_json() for r in self.records],
            "problems": [{"file": p.file, "line": p.line, "message": p.message} for p in self.problems],
        }


class Tree(Protocol):
    """One version of the repository's files."""

    @property
    def files(self) -> Mapping[str, str]: ...  # repo-relative path -> content id (a blob sha, or the path)

    @property
    def cacheable(self) -> bool: ...  # whether content ids name content (so results may be cached by them)

    @property
    def unreadable(self) -> dict[str, str]: ...  # `.py` paths not read (a symlink, FIFO, too large) -> why

    def read(self, ids: Iterable[str]) -> dict[str, bytes]: ...


class WorkTree:
    """The files on disk under `root` (only `.py` files below `under`)."""

    cacheable = False

    def __init__(self, root: Path, under: str):
        self.root = root
        base = root / under if under else root
        self.files: dict[str, str] = {}
        self.unreadable: dict[str, str] = {}
        # os.walk does not follow directory symlinks; file symlinks, FIFOs and
        # devices are refused when read (limits.read_regular), never opened.
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = Path(dirpath, name).relative_to(root).as_posix()
                    self.files[path] = path

    def read(self, ids: Iterable[str]) -> dict[str, bytes]:
        found = {}
        for path in ids:
            try:
                found[path] = limits.read_regular(self.root / path)
            except limits.NotReadable as exc:
                self.unreadable[path] = exc.message
        return found


class CommitTree:
    """The files of one commit (below `paths`, if given), as discovery reads them: a `git.Commit`."""

    cacheable = True

    def __init__(self, root: Path, sha: str, *paths: str):
        self.commit = git.Commit(root, sha, *paths)
        self.root = root
        self.sha = sha
        entries = self.commit.entries
        # A committed symlink's blob is its target's name, not Python: never parsed as a module.
        self.files = {path: blob for path, (mode, blob) in entries.items() if mode != git.SYMLINK_MODE}
        self.unreadable = {
            path: limits.NOT_REGULAR for path, (mode, _) in entries.items()
            if mode == git.SYMLINK_MODE and path.endswith(".py")
        }

    def read(self, ids: Iterable[str]) -> dict[str, bytes]:
        return git.read_blobs(self.root, ids)

    def read_path(self, path: str) -> bytes | None:
        return self.commit.read(path) if path in self.files else None


def python_files(tree: Tree, under: str) -> list[str]:
    prefix = f"{under}/" if under else ""
    return sorted(p for p in tree.files if p.endswith(".py") and p.startswith(prefix) and "/__pycache__/" not in p)


# -- analysing many files: cached by blob sha, in parallel when cold --------------------

_ANALYSERS: dict[str, Callable[[bytes], Any]] = {
    "imports": scan_imports,
    "flows": lambda source: analyze(source).to_cache(),
}
_JOB: list[tuple[str, bytes]] = []


def _work(bounds: tuple[str, int, int]) -> list[tuple[str, Any]]:
    kind, start, stop = bounds
    analyse = _ANALYSERS[kind]
    return [(key, analyse(source)) for key, source in _JOB[start:stop]]


def _compute(kind: str, sources: dict[str, bytes]) -> dict[str, Any]:
    import multiprocessing  # only here: a small plan never pays for importing it

    analyse = _ANALYSERS[kind]
    workers = min(os.cpu_count() or 1, 8)
    if len(sources) < _PARALLEL_FROM or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return {key: analyse(source) for key, source in sources.items()}
    # Forked workers inherit the sources; only small results travel back.
    _JOB[:] = list(sources.items())
    step = -(-len(_JOB) // workers)  # one chunk each: fewer, larger results travel back
    chunks = [(kind, i, min(i + step, len(_JOB))) for i in range(0, len(_JOB), step)]
    gc.freeze()  # keep the children's garbage collector from copying every inherited page
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return {key: result for part in pool.map(_work, chunks) for key, result in part}
    finally:
        gc.unfreeze()
        _JOB.clear()


def analysed(tree: Tree, kind: str, paths: Iterable[str], cache: ParseCache | None) -> dict[str, Any]:
    """path -> the analyser's result for each path (`imports`: raw imports; `flows`: ModuleFacts' tuple)."""
    ids = {path: tree.files[path] for path in paths}
    if cache is not None and tree.cacheable:
        return cache.get_many(kind, ids, tree.read, lambda sources: _compute(kind, sources))
    results = _compute(kind, tree.read(ids.values()))
    return {path: results[key] for path, key in ids.items() if key in results}


# -- pairing declarations with flows ----------------------------------------------------

def discover(config: Config) -> Discovery:
    """The workflows of the working tree's flows directory."""
    if not (config.root / config.flows).is_dir():
        raise InputError(
            f"the flows directory {config.flows!r} does not exist in {config.root}; "
            "create it or set `flows` under [tool.flowship] in pyproject.toml."
        )
    root = config.root.resolve()
    if not (config.root / config.flows).resolve().is_relative_to(root):
        raise InputError(f"the flows directory {config.flows!r} leads outside {config.root} (a symlink); "
                         "flowship reads only files inside the repository.")
    return discover_tree(WorkTree(config.root, config.flows), config.flows)


def discover_tree(tree: Tree, flows_dir: str, cache: ParseCache | None = None) -> Discovery:
    facts = analysed(tree, "flows", python_files(tree, flows_dir), cache)
    found = combine({path: ModuleFacts.from_cache(data) for path, data in facts.items()})
    return with_unreadable(found, tree, flows_dir, None)


def with_unreadable(found: Discovery, tree: Tree, flows_dir: str, only: Iterable[str] | None) -> Discovery:
    """`found` plus a problem at line 1 for each flow-directory file that was not read."""
    prefix = f"{flows_dir}/" if flows_dir else ""
    wanted = None if only is None else set(only)
    extra = [
        Problem(path, 1, message) for path, message in sorted(tree.unreadable.items())
        if path.startswith(prefix) and (wanted is None or path in wanted)
    ]
    if not extra:
        return found
    return Discovery(found.records, sorted([*found.problems, *extra], key=lambda p: (p.file, p.line)))


def discover_partly(
    tree: Tree, flows_dir: str, files: Iterable[str], names: Iterable[str], cache: ParseCache | None,
    sources: Mapping[str, bytes] | None = None,
) -> Discovery:
    """What `discover_tree` says about `files`, and about every workflow named in `names` or declared by `files`.

    Reads only those: a flow's name is written verbatim in its file (as the
    `@flow(name=...)` literal, which `analyze` accepts only when its text holds
    the name, or as the function's name), so the only files that can declare
    a name are those whose bytes contain it; they are parsed to settle
    duplicates. Problems are those of `files` and of the other declarations of
    the names. `sources` (path -> bytes) saves reading blobs already read.
    """
    flows = python_files(tree, flows_dir)
    files = sorted(set(files).intersection(flows))
    facts = {p: ModuleFacts.from_cache(d) for p, d in analysed(tree, "flows", files, cache).items()}
    wanted = set(names) | {r.name for p in files for r in pair(p, facts[p])[0]}
    others: list[str] = []
    if wanted:
        rest = [p for p in flows if p not in facts]
        if all(n.isascii() for n in wanted):
            if sources is None:
                blobs = tree.read(tree.files[p] for p in rest)
                sources = {p: blobs.get(tree.files[p], b"") for p in rest}
            spelled = sorted({s.encode() for n in wanted for s in (n, n.replace("-", "_"))}, key=len, reverse=True)
            holds = re.compile(b"|".join(re.escape(s) for s in spelled)).search
            others = [p for p in rest if holds(sources.get(p, b""))]
        else:  # a non-ASCII name may be encoded otherwise (a coding cookie): read them all
            others = rest
        more = analysed(tree, "flows", others, cache)
        facts.update((p, ModuleFacts.from_cache(d)) for p, d in more.items())
    found = combine(facts)
    # Another file's name is settled only when it is wanted: the rest is left out.
    relevant = set(files) | {p for p in others if any(r.name in wanted for r in pair(p, facts[p])[0])}
    return Discovery(
        [r for r in found.records if r.file in relevant], [p for p in found.problems if p.file in relevant]
    )


def combine(facts: Mapping[str, ModuleFacts]) -> Discovery:
    records: list[WorkflowRecord] = []
    problems: list[Problem] = []
    for path in sorted(facts):
        found, trouble = pair(path, facts[path])
        records.extend(found)
        problems.extend(trouble)
    by_name: dict[str, list[WorkflowRecord]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    unique = []
    for record in records:
        same = by_name[record.name]
        if len(same) == 1:
            unique.append(record)
            continue
        places = " and ".join(f"{r.file}:{r.line}" for r in same)
        problems.append(Problem(
            record.file, record.line,
            f"two workflows are named {record.name!r} ({places}); flow names must be unique, "
            "rename one with @flow(name=...)",
        ))
    problems.sort(key=lambda p: (p.file, p.line))
    return Discovery(unique, problems)


def pair(path: str, facts: ModuleFacts) -> tuple[list[WorkflowRecord], list[Problem]]:
    """The workflow one module declares, or the problems that stop it."""
    if facts.syntax_error:
        line, message = facts.syntax_error
        return [], [Problem(path, line, message)]
    if not facts.declared:
        return [], []
    problems = [
        Problem(path, *extra.problem) if extra.problem and extra.problem[1] == NOT_AT_TOP else
        Problem(path, extra.line, f"a module declares one workflow, and this one already has Workflow(...) "
                f"at line {facts.declared[0].line}; move this flow to its own module")
        for extra in facts.declared[1:]
    ]
    declared = facts.declared[0]
    if declared.problem or declared.workflow is None:
        line, message = declared.problem or (declared.line, "this Workflow(...) cannot be read")
        return [], [*problems, Problem(path, line, message)]
    flows = facts.flows
    names = ", ".join(f.function for f in flows)
    if declared.flow is not None:
        flows = tuple(f for f in flows if f.function == declared.flow)
        if not flows:
            return [], [*problems, Problem(
                path, declared.line,
                f"Workflow(flow={declared.flow!r}) names no @flow function of this module "
                f"({'it has: ' + names if names else 'it has none'})",
            )]
    if not flows:
        return [], [*problems, Problem(
            path, declared.line,
            "this Workflow(...) has no @flow function in its module; decorate the flow with "
            "@flow (from prefect import flow) in the same file",
        )]
    if len(flows) > 1:
        return [], [*problems, Problem(
            path, declared.line,
            f"this module has {len(flows)} @flow functions ({names}); say which one this workflow "
            f'deploys with Workflow(..., flow="{flows[0].function}")',
        )]
    flow = flows[0]
    if flow.name is None:
        return [], [*problems, Problem(
            path, flow.line,
            "@flow(name=...) must be a string literal, written plainly (no escapes, no adjacent literals), "
            "so flowship can read it without importing the module",
        )]
    workflow = Workflow.from_json(declared.workflow)
    return [WorkflowRecord(flow.name, path, declared.line, flow.function, workflow)], problems

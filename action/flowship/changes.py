"""Change analysis: which workflows a commit range affects, and why.

`make_plan` reads the two commits it compares (`git ls-tree`, `git cat-file
--batch`, `git diff -M`), never the working tree and never flow code. A
workflow is affected when one of these changed between base and head:

- its own file, or any repository module it imports, directly or through
  other modules (`flowship.imports` builds the graph statically);
- a data file that `[tool.flowship] data` maps to it (glob -> flow names);
- an input of its image family (template, requirements, context globs);
- the `[tool.flowship]` table of pyproject.toml (everything; a change to the
  rest of pyproject.toml affects nothing).

Reasons are the changed paths; where everything is planned they are
`(all)` (no base, `--all`), `pyproject.toml` (the configuration changed) or
`(requested)` (`--flow`). Flows whose name disappeared between base and head
(a deleted file, a removed declaration, a renamed flow) become deletions,
unless the head file has a problem that hides its name: a syntax error never
deletes a production deployment.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flowship import git
from flowship.cache import ParseCache
from flowship.config import PYPROJECT, Config
from flowship.declarations import ModuleFacts
from flowship.discovery import CommitTree, Discovery, WorkflowRecord, analysed, discover_tree, pair, python_files
from flowship.errors import InputError
from flowship.events import Candidate, Event
from flowship.graph import build as build_graph
from flowship.imports import scan_imports
from flowship.plan import Deletion, Plan, PlannedImage, PlannedWorkflow
from flowship.scope import Scope, deployment_name

ALL = "(all)"
REQUESTED = "(requested)"
FORCED = "(forced)"


@dataclass
class Analysis:
    """Changed paths that reach each workflow and image family."""

    workflows: dict[str, set[str]] = field(default_factory=dict)  # flow name -> reasons
    images: dict[str, set[str]] = field(default_factory=dict)  # family -> reasons
    everything: str | None = None  # the reason everything is affected, if it is
    notes: list[str] = field(default_factory=list)


def make_plan(
    config: Config,
    *,
    scope: Scope,
    head: str = "HEAD",
    base: str | None = None,
    everything: bool = False,
    only: Sequence[str] = (),
    force_rebuild: bool = False,
) -> Plan:
    root = config.root
    head_sha = git.rev_parse(root, head)
    base_sha = git.rev_parse(root, base) if base else None
    cache = ParseCache.for_repo(config.env.cache_dir, git.git_dir(root))
    tree = CommitTree(root, head_sha)
    found = discover_tree(tree, config.flows, cache)
    records = found.by_name()

    changes = git.diff(root, base_sha, head_sha) if base_sha else []
    if base_sha is None:
        analysis = Analysis(everything=ALL)
    else:
        analysis = analyse_changes(config, tree, base_sha, changes, found, cache)

    if only:
        unknown = [name for name in only if name not in records]
        if unknown:
            raise InputError(_unknown_flows(unknown, records))
        chosen = {name: analysis.workflows.get(name) or {REQUESTED} for name in only}
    elif analysis.everything:  # no base, or the configuration changed: everything, and the paths too
        chosen = {name: analysis.workflows.get(name, set()) | {analysis.everything} for name in records}
    elif everything:
        chosen = {name: analysis.workflows.get(name) or {ALL} for name in records}
    else:
        chosen = {name: reasons for name, reasons in analysis.workflows.items() if name in records}

    planned = tuple(
        _planned(records[name], scope, reasons) for name, reasons in sorted(chosen.items(), key=lambda kv: records[kv[0]].file)
    )
    deletions = _deletions(config, base_sha, changes, found, cache) if base_sha else ()
    images = _images(config, tree, head_sha, planned, analysis, force_rebuild)
    cache.save(keep=tree.files.values())
    return Plan(
        base=base_sha,
        head=head_sha,
        scope=scope,
        workflows=planned,
        delete=tuple(Deletion(name, deployment_name(name, scope)) for name in deletions),
        images=images,
        problems=tuple(str(p) for p in found.problems) + tuple(analysis.notes),
    )


def _unknown_flows(unknown: list[str], records: Mapping[str, WorkflowRecord]) -> str:
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(records), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"no workflow is named {', '.join(hints)}; `flowship discover` lists them."


def _planned(record: WorkflowRecord, scope: Scope, reasons: set[str]) -> PlannedWorkflow:
    return PlannedWorkflow(
        name=record.name,
        file=record.file,
        entrypoint=record.entrypoint,
        deployment=deployment_name(record.name, scope),
        image=record.workflow.machine.family,
        workflow=record.workflow,
        reasons=tuple(sorted(reasons)),
        line=record.line,
    )


# -- what the changed paths reach ---------------------------------------------------

def analyse_changes(
    config: Config, tree: CommitTree, base_sha: str, changes: Sequence[git.Change],
    found: Discovery, cache: ParseCache | None,
) -> Analysis:
    analysis = Analysis()
    changed = sorted({p for c in changes for p in (c.path, c.old_path) if p})
    if PYPROJECT in changed and _config_changed(config, base_sha, tree):
        analysis.everything = PYPROJECT
    by_file = {r.file: r.name for r in found.records}

    changed_py = [p for p in changed if p.endswith(".py")]
    if changed_py:
        head_py = python_files(tree, "")
        # Deleted modules stay in the graph: a flow still importing one is broken, hence affected.
        deleted_py = [p for p in changed_py if p not in tree.files]
        imports = build_graph(
            tree.files, head_py, deleted_py, import_roots(config, tree.files),
            lambda paths: _raw_imports(tree, paths, cache), cache.file("graph") if cache else None,
        )
        for path in changed_py:
            for dependent in imports.dependents(path):
                name = by_file.get(dependent)
                if name is not None:
                    analysis.workflows.setdefault(name, set()).add(path)

    names = set(by_file.values())
    for pattern, flows in config.data.items():
        hits = [p for p in changed if glob_match(pattern, p)]
        for name in flows if hits else ():
            if name in names:
                analysis.workflows.setdefault(name, set()).update(hits)
            else:
                analysis.notes.append(f"[tool.flowship] data {pattern!r} names {name!r}, which is no workflow")

    for family in {r.workflow.machine.family for r in found.records}:
        hits = {p for p in changed for pattern in family_inputs(config, family) if glob_match(pattern, p)}
        if hits:
            analysis.images[family] = hits
            for record in found.records:
                if record.workflow.machine.family == family:
                    analysis.workflows.setdefault(record.name, set()).update(hits)
    return analysis


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


def family_inputs(config: Config, family: str) -> list[str]:
    """Repository globs whose change rebuilds `family`'s dependencies image."""
    try:
        from flowship.images.inputs import family_inputs as images_family_inputs
    except (ImportError, AttributeError):
        spec = config.images.get(family)
        if spec is None:
            return []  # a built-in family's template ships inside flowship
        return [p for p in (spec.template, *spec.requirements, *spec.context) if p]
    return list(images_family_inputs(config, family))


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


# -- deletions ----------------------------------------------------------------------

def _deletions(
    config: Config, base_sha: str, changes: Sequence[git.Change], found: Discovery, cache: ParseCache | None
) -> list[str]:
    """Flow names declared at base in changed files that no head workflow carries any more."""
    prefix = f"{config.flows}/"
    touched = {c.old_path or c.path: c.path for c in changes if (c.old_path or c.path).startswith(prefix)}
    touched = {old: new for old, new in touched.items() if old.endswith(".py")}
    if not touched:
        return []
    base_files = git.ls_tree(config.root, base_sha, config.flows)
    present = {p: base_files[p] for p in touched if p in base_files}
    facts = analysed(_Blobs(config, present), "flows", present, cache)
    heads = {r.name for r in found.records}
    troubled = {p.file for p in found.problems}
    gone = []
    for old, data in sorted(facts.items()):
        if touched[old] in troubled:
            continue  # the head file is broken: keep its deployment until it is fixed
        for record in pair(old, ModuleFacts.from_cache(data))[0]:
            if record.name not in heads:
                gone.append(record.name)
    return sorted(set(gone))


class _Blobs:
    """A tree of just some blobs of a commit (the base's changed flow files)."""

    cacheable = True

    def __init__(self, config: Config, files: dict[str, str]):
        self.root = config.root
        self.files = files

    def read(self, ids: Iterable[str]) -> dict[str, bytes]:
        return git.read_blobs(self.root, ids)


# -- images -------------------------------------------------------------------------

def _images(
    config: Config, tree: CommitTree, head_sha: str, planned: Sequence[PlannedWorkflow],
    analysis: Analysis, force: bool,
) -> tuple[PlannedImage, ...]:
    images = []
    for family in sorted({w.image for w in planned}):
        reasons = set(analysis.images.get(family, ()))
        if analysis.everything:
            reasons.add(analysis.everything)
        if force:
            reasons.add(FORCED)
        images.append(PlannedImage(
            name=family,
            tag=f"{family}-{head_sha}",
            rebuild=bool(reasons),
            reasons=tuple(sorted(reasons)),
            deps_tag=_deps_tag(config, family, tree),
        ))
    return tuple(images)


def _deps_tag(config: Config, family: str, tree: CommitTree) -> str | None:
    try:
        from flowship.images.inputs import deps_tag
    except (ImportError, AttributeError):
        return None  # the images package computes it when it builds
    # The files list lets context globs expand against the head commit.
    return deps_tag(config, family, tree.read_path, files=list(tree.files))


# -- the base commit ------------------------------------------------------------------

def resolve_base(config: Config, event: Event, last_deployed: str | None) -> tuple[str | None, str]:
    """The commit to compare `event.head` with, and a note saying how it was chosen.

    Prefers the last commit deployed to the event's scope (when it is an
    ancestor of head), then the event's own candidates (a push's `before`, a
    pull request's merge base). A shallow clone is deepened from its remote
    when a candidate is missing; without one, or when nothing fits (a new
    branch, the first commit), the answer is None: plan everything.
    """
    if event.head is None:
        raise InputError(f"the {event.name} event names no commit to deploy.")
    candidates = list(event.bases)
    if last_deployed:
        candidates.insert(0, Candidate("commit", last_deployed, "the last deployed commit"))
    return choose_base(config.root, event.head, candidates)


def choose_base(root: Any, head: str, candidates: Sequence[Candidate]) -> tuple[str | None, str]:
    if not candidates:
        return None, "there is no earlier commit to compare with (a new branch or the first commit); planning every workflow."
    skipped: list[str] = []
    attempts: list[int | None] = [0]
    if git.is_shallow(root):
        remote = next(iter(git.remotes(root)), None)
        if remote is None:
            found = _first_fit(root, head, candidates, skipped)
            if found:
                return found
            return None, ("this clone is shallow and has no remote to deepen it from; planning every workflow "
                          "(use actions/checkout with fetch-depth: 0).")
        attempts += [100, None]  # deepen a little, then fetch everything
    else:
        remote = None
    for depth in attempts:
        if depth != 0 and remote is not None and git.is_shallow(root):
            git.deepen(root, remote, by=depth, fetch_shas=[c.sha for c in candidates])
        skipped.clear()
        found = _first_fit(root, head, candidates, skipped)
        if found:
            return found
    return None, f"{'; '.join(skipped)}; planning every workflow."


def _first_fit(root: Any, head: str, candidates: Sequence[Candidate], skipped: list[str]) -> tuple[str, str] | None:
    if not git.has_commit(root, head):
        skipped.append(f"the head commit {head[:12]} is not in this clone")
        return None
    for candidate in candidates:
        short = candidate.sha[:12]
        if not git.has_commit(root, candidate.sha):
            skipped.append(f"{candidate.label} {short} is not in this clone's history")
            continue
        if candidate.kind == "merge-base":
            base = git.merge_base(root, candidate.sha, head)
            if base:
                note = " ".join(s + ";" for s in skipped)
                return base, f"{note} comparing with {candidate.label}, {base[:12]}.".strip()
            skipped.append(f"{candidate.label} {short} shares no history with {head[:12]}")
        elif git.is_ancestor(root, candidate.sha, head):
            note = " ".join(s + ";" for s in skipped)
            return git.rev_parse(root, candidate.sha), f"{note} comparing with {candidate.label}, {short}.".strip()
        else:
            skipped.append(f"{candidate.label} {short} is not an ancestor of {head[:12]} (a force push or a rollback)")
    return None

"""Change analysis: which workflows a commit range affects, and why.

`make_plan` reads the two commits it compares (`git ls-tree`, `git cat-file
--batch`, `git diff -M`), never the working tree and never flow code. For an
ordinary commit it searches backwards from the changed modules and parses
only the flows they reach (`flowship.changes.affected.analyse_partial`); with no base,
`--all`, `--flow`, a configuration or image-input change, or a change imported
by much of the repository, it discovers every flow and uses the full import
graph. A workflow is affected when one of these changed between base and head:

- its own file, or any repository module it imports, directly or through
  other modules (`flowship.discovery.imports` builds the graph statically);
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
from collections.abc import Mapping, Sequence

from flowship import git
from flowship.changes.affected import Analysis, analyse_changes, analyse_partial
from flowship.discovery.cache import ParseCache
from flowship.config import Config
from flowship.discovery.declarations import ModuleFacts
from flowship.discovery import (
    CommitTree, Discovery, WorkflowRecord, analysed, combine, discover_tree, pair, with_unreadable,
)
from flowship.errors import InputError
from flowship.images.inputs import deps_tag
from flowship.plan import Deletion, Plan, PlannedImage, PlannedWorkflow
from flowship.scope import Scope, deployment_name

ALL = "(all)"
REQUESTED = "(requested)"
FORCED = "(forced)"


def make_plan(
    config: Config,
    *,
    scope: Scope,
    head: str = "HEAD",
    base: str | None = None,
    everything: bool = False,
    only: Sequence[str] = (),
    force_rebuild: bool = False,
    full_scan: bool = False,
) -> Plan:
    """The plan from `base` to `head` (everything without a base); `full_scan` reads the whole tree even
    for an ordinary commit (what the partial analysis is tested against)."""
    root = config.root
    head_sha = git.rev_parse(root, head)
    base_sha = git.rev_parse(root, base) if base else None
    cache = ParseCache.for_repo(config.env.cache_dir, git.git_dir(root))
    tree = CommitTree(root, head_sha)
    changes = git.diff(root, base_sha, head_sha) if base_sha else []
    base_flows = _base_flows(config, base_sha, changes, cache) if base_sha else {}

    partial = None
    if base_sha is not None and not (everything or only or full_scan):
        base_names = {name for _, names in base_flows.values() for name in names}
        partial = analyse_partial(config, tree, base_sha, changes, base_names, cache)
    if partial is not None:  # an ordinary commit: only what the change reaches was read
        analysis, found = partial
        # A changed flow file that is not read (now a symlink, say) is a problem, so it never deletes.
        found = with_unreadable(found, tree, config.flows, only=[c.path for c in changes])
    else:
        found = discover_tree(tree, config.flows, cache)
        if base_sha is None:
            analysis = Analysis(everything=ALL)
        else:
            analysis = analyse_changes(config, tree, base_sha, changes, found, cache)
    records = found.by_name()

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
    deletions = _deletions(base_flows, found)
    if deletions and base_sha is not None:
        deletions = _confirmed(config, tree, base_sha, changes, deletions)
    images = _images(config, tree, head_sha, planned, analysis, force_rebuild)
    cache.save(keep=tree.files.values())
    return Plan(
        base=base_sha,
        head=head_sha,
        scope=scope,
        workflows=planned,
        delete=tuple(Deletion(name, deployment_name(name, scope)) for name in deletions),
        images=images,
        problems=tuple(found.problems),
        notes=tuple(analysis.notes),
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


# -- deletions ----------------------------------------------------------------------

def _base_flows(
    config: Config, base_sha: str, changes: Sequence[git.Change], cache: ParseCache | None
) -> dict[str, tuple[str, list[str]]]:
    """Changed flow files at base: old path -> (head path, the flow names declared there at base)."""
    prefix = f"{config.flows}/"
    touched = {c.old_path or c.path: c.path for c in changes if (c.old_path or c.path).startswith(prefix)}
    touched = {old: new for old, new in touched.items() if old.endswith(".py")}
    if not touched:
        return {}
    base = CommitTree(config.root, base_sha, config.flows)
    present = {p: base.files[p] for p in touched if p in base.files}
    facts = analysed(base, "flows", present, cache)
    return {
        old: (touched[old], [r.name for r in pair(old, ModuleFacts.from_cache(data))[0]])
        for old, data in sorted(facts.items())
    }


def _deletions(base_flows: Mapping[str, tuple[str, list[str]]], found: Discovery) -> list[str]:
    """Flow names declared at base in changed files that no head workflow carries any more."""
    heads = {r.name for r in found.records}
    troubled = {p.file for p in found.problems}
    gone: list[str] = []
    for new, names in base_flows.values():
        if new in troubled:
            continue  # the head file is broken: keep its deployment until it is fixed
        gone.extend(name for name in names if name not in heads)
    return sorted(set(gone))


def _confirmed(
    config: Config, tree: CommitTree, base_sha: str, changes: Sequence[git.Change], deletions: list[str],
) -> list[str]:
    """The deletions that hold when the files behind them are parsed again, without the cache.

    A deletion is the one plan entry that removes production, so it never
    rests on a cache entry alone (a forged or stale one could claim a file
    declares nothing); the few files involved are cheap to read again.
    """
    base_flows = _base_flows(config, base_sha, changes, None)
    heads = sorted({new for new, names in base_flows.values() if set(names) & set(deletions) and new in tree.files})
    facts = analysed(tree, "flows", heads, None)
    found = combine({path: ModuleFacts.from_cache(data) for path, data in facts.items()})
    kept = {r.name for r in found.records}
    wanted = set(_deletions(base_flows, found))
    return [name for name in deletions if name in wanted and name not in kept]


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


def _deps_tag(config: Config, family: str, tree: CommitTree) -> str:
    # The files list lets context globs expand against the head commit.
    return deps_tag(config, family, tree.read_path, files=list(tree.files))


# -- the base commit ------------------------------------------------------------------

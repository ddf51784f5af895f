"""Prune: deployments nothing will clean up any more, found and removed.

Candidates are this project's deployments tagged `flowship`:

- an **orphan**: a `scope:main` deployment whose flow main's recorded commit
  (deploy/state.py) no longer declares, and whose own commit that record
  descends from (a flow added by a newer commit whose deploy failed in part
  is not an orphan, it is not recorded yet);
- a **closed preview**: its pull request is closed (the CI's cleanup failed),
  or, without a pull request to ask, its branch no longer exists;
- a **stale preview**: not updated for `[tool.flowship.prune] stale-days`.

`stale_previews` (flowship/previews.py) is the preview rule, pure and shipped
in every code image, so the `cleanup-previews` meta flow decides with the same
code. A `scope:main` deployment of a flow that
still exists is never a candidate, and each candidate is read again right
before it goes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from flowship import console, git
from flowship.config import Config
from flowship.deploy import remote, timeouts, vcs
from flowship.deploy.client import describe, expected, using
from flowship.deploy.state import forget_deployed, other_project, project_tag, read_last_deployed
from flowship.previews import PreviewDeployment, stale_previews
from flowship.scope import MAIN, Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

    from flowship.deploy.target import Target

# Which of these pull request numbers are open (None: it cannot be told); the GitHub side is the commands'.
OpenPulls = Callable[[list[int]], Collection[int] | None]
# The flows a commit declares; None when a declaration problem hides a name (a broken file never deletes).
DeclaredFlows = Callable[[str], Collection[str] | None]


@dataclass(frozen=True)
class Candidate:
    deployment: str  # `<flow>/<scope>`
    flow_name: str
    scope: Scope
    reason: str
    deployment_id: Any
    version: str | None


@dataclass
class PruneResult:
    dry_run: bool
    candidates: list[Candidate] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def prune(
    config: Config, target: Target, *, live_branches: Collection[str] | None, open_prs: OpenPulls | None,
    declared_flows: DeclaredFlows, dry_run: bool, now: datetime | None = None,
    client: SyncPrefectClient | None = None,
) -> PruneResult:
    """Find the candidates (module docstring) and, unless `dry_run`, remove them with what the target made.

    `live_branches` are the repository's branches (None: unknown); `open_prs(numbers)`
    says which of those pull requests are open (None: unknown); `declared_flows(sha)`
    names the flows a commit declares (None: cannot tell). A dry run only reads.
    """

    result = PruneResult(dry_run)
    with using(config, client) as opened:
        result.candidates = _candidates(config, opened, live_branches, open_prs, declared_flows, result.notes,
                                        now or datetime.now(timezone.utc))
        for c in result.candidates:
            console.info(f"{'would remove' if dry_run else 'removing'} {c.deployment}: {c.reason}")
        if not dry_run:
            _remove(config, opened, target, result)
    return result


def _ours(config: Config, client: SyncPrefectClient) -> list[tuple[str, Any]]:

    # Only deployments tagged with this project: on a shared server a sweep
    # must never reach another repository's (or an untagged, older) deployment.
    return remote.tagged(client, ["flowship", project_tag(config.project)])


def _candidates(config: Config, client: SyncPrefectClient, live_branches: Collection[str] | None,
                open_prs: OpenPulls | None, declared_flows: DeclaredFlows,
                notes: list[str], now: datetime) -> list[Candidate]:

    ours = _ours(config, client)
    days = config.prune.stale_days
    older_than = now - timedelta(days=days) if days else None
    facts = [(d, _facts(flow_name, d)) for flow_name, d in ours]
    by_id = {f.id: d for d, f in facts}
    numbers = sorted({f.pr for _, f in facts if f.pr is not None and f.is_preview})
    open_now = open_prs(numbers) if open_prs is not None and numbers else None
    out = [
        Candidate(s.deployment.full_name, s.deployment.flow_name, _scope(s.deployment), s.reason,
                  by_id[s.deployment.id].id, by_id[s.deployment.id].version)
        for s in stale_previews([f for _, f in facts], live_branches, open_now, older_than=older_than)
    ]
    if live_branches is None:
        notes.append("branches not checked: the `origin` remote could not be asked")
    main = Scope.main(config.default_branch)
    record = read_last_deployed(config, main, client=client)
    if record is None or not git.has_commit(config.root, record):
        notes.append("orphans not checked: main has no recorded commit in this clone")
        return out
    declared = declared_flows(record)
    if declared is None:
        notes.append(f"orphans not checked: {record[:12]} (main) has declaration problems that may hide a flow's name")
        return out
    for flow_name, d in ours:
        if d.name != MAIN or "scope:main" not in d.tags or flow_name in declared:
            continue
        if vcs.is_ancestor(config.root, d.version or "", record) is not True:
            notes.append(f"left {flow_name}/main: it runs {str(d.version)[:12]}, which main's record "
                         f"{record[:12]} does not descend from")
            continue
        out.append(Candidate(f"{flow_name}/main", flow_name, main, f"{record[:12]} (main) no longer declares it",
                             d.id, d.version))
    return out


def _facts(flow_name: str, d: Any) -> PreviewDeployment:
    info = d.version_info.model_dump() if d.version_info else {}
    return PreviewDeployment(str(d.id), flow_name, d.name, frozenset(d.tags), info.get("branch") or None, d.updated)


def _scope(d: PreviewDeployment) -> Scope:
    # Only the slug is sure (the full branch name is kept by Prefect Cloud alone);
    # records, automations and ECS families are named by it.
    slug = d.slug or d.name
    return Scope(kind="branch", branch=d.branch or slug, slug=slug, pr=d.pr)


def _remove(config: Config, client: SyncPrefectClient, target: Target, result: PruneResult) -> None:
    from prefect.exceptions import ObjectNotFound


    for c in result.candidates:
        try:
            try:
                current = client.read_deployment(c.deployment_id)
            except ObjectNotFound:
                current = None
            if current is not None and (reason := _changed(config, c, current)):
                console.warning(f"left {c.deployment} alone: {reason}")
                continue
            if current is not None:
                remote.delete(client, current.id)
            for automation in timeouts.read(client, [c.deployment], c.scope).values():
                timeouts.delete(client, automation.id)
            target.cleanup(c.flow_name, c.scope)
        except Exception as exc:
            if not expected(exc):
                raise
            result.failed[c.deployment] = describe(exc)
            console.error(f"{c.deployment}: {result.failed[c.deployment]}")
            continue
        result.removed.append(c.deployment)
    # A preview with nothing left loses its record too, so a new branch of that name starts afresh.
    left = {t for _, d in _ours(config, client) for t in d.tags if t.startswith("branch:")}
    for scope in {c.scope for c in result.candidates if not c.scope.is_main}:
        if f"branch:{scope.slug}" not in left:
            forget_deployed(config, scope, client=client)


def _changed(config: Config, c: Candidate, current: Any) -> str | None:
    """Why `current` (read again) is no longer the candidate that was found, or None."""
    tags = set(current.tags)
    if "flowship" not in tags or project_tag(config.project) not in tags or other_project(config.project, list(tags)):
        return "its tags changed"
    if current.version != c.version:
        return f"it was deployed again meanwhile (now {str(current.version)[:12]})"
    if not c.scope.is_main and ("scope:main" in tags or current.name == MAIN):
        return "it is tagged as main"
    return None


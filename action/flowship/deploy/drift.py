"""Drift: deployments whose owned fields no longer match what their commit declares.

A deployment flowship made runs one commit (its `version`). What that commit
declares is `desired.desired` of the workflow as discovered at that commit;
whatever `desired.differences` finds between the two was changed by a person
(the Prefect UI) or another tool since the deploy. Who wins:

- a person's pause is kept: the deployment's own `paused` is not a field
  flowship owns, and a schedule that git declares active but a person paused
  stays paused on main (`keep_pauses`, which the deploy applies too);
- everything else converges to git on the next deploy of that workflow, and
  until then `flowship drift` and main's deploy summary list it with the
  field diff, so nobody is surprised by the overwrite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowship import git
from flowship.config import Config
from flowship.deploy import remote
from flowship.deploy.client import using
from flowship.deploy.desired import (
    Change, Desired, commit_info, current_fields, desired, differences, parameter_schema, schedule_key, schedule_name,
)
from flowship.deploy.state import other_project
from flowship.deploy.target import Infrastructure, Request, Target
from flowship.errors import FlowshipError
from flowship.markdown import escape as _escape
from flowship.plan import PlannedWorkflow
from flowship.redact import redact
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

# What a commit declares: its workflows by name (`commands` plans them; deploy/ never plans).
Declared = Callable[[str], Mapping[str, PlannedWorkflow]]
# The target's part of the fields: job variables and pull steps.
TARGET_FIELDS = ("job_variables", "pull_steps")


def _key(schedule: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in schedule.items() if k != "active"}, sort_keys=True)


def keep_pauses(want: Desired, current: Any) -> Desired:
    """`want` with every schedule a person paused left paused.

    Only where git wants the schedule active (main) and the deployment has
    the same schedule (same cron and zone, or interval) inactive: a schedule
    git changes is a new schedule, and starts as git says.
    """
    if current is None or not want.schedules_active:
        return want
    paused = {_key(s) for s in current_fields(current)["schedules"] if not s["active"]}
    keep = frozenset(i for i, s in enumerate(want.schedules) if _key(schedule_key(s, True)) in paused)
    if not keep:
        return want
    schedules = sorted((schedule_key(s, i not in keep) for i, s in enumerate(want.schedules)),
                       key=lambda s: json.dumps(s, sort_keys=True))
    return replace(want, fields={**want.fields, "schedules": schedules}, paused=keep)


@dataclass(frozen=True)
class Drifted:
    """One deployment whose owned fields differ from its commit's declaration."""

    deployment: str  # `<flow>/<scope>`
    commit: str  # the full sha it runs
    changes: tuple[Change, ...]  # `old`: in Prefect now; `new`: what git declares (and the next deploy writes)
    deployment_id: UUID | None = None


@dataclass
class DriftReport:
    scope: Scope
    checked: int = 0
    drifted: list[Drifted] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)  # deployment -> the pauses kept, as people name them
    unchecked: dict[str, str] = field(default_factory=dict)  # deployment -> why it could not be compared
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drifted


def find_drift(
    config: Config, scope: Scope, target: Target, declared: Declared, *,
    images: Mapping[str, str] | None = None, client: SyncPrefectClient | None = None,
) -> DriftReport:
    """Compare each of this project's deployments in `scope` with what its own commit declares.

    Reads only: nothing in Prefect is written. `declared(sha)` gives the
    workflows a commit declares. The target prepares the commit's
    infrastructure as a deploy would (idempotent: it creates nothing that is
    not there); where it cannot without a build (ECS needs the code image),
    job variables and pull steps are left out of the comparison and a note says so.
    """
    report = DriftReport(scope)
    with using(config, client) as opened:
        for flow_name, deployment in remote.tagged(opened, scope.tags()[:3]):
            if deployment.name != scope.name or other_project(config.project, list(deployment.tags)) is not None:
                continue
            full = f"{flow_name}/{scope.name}"
            report.checked += 1
            try:
                _check(config, scope, target, declared, images or {}, report, full, flow_name, deployment)
            except FlowshipError as exc:
                report.unchecked[full] = exc.message
    report.drifted.sort(key=lambda d: d.deployment)
    return report


def _check(config: Config, scope: Scope, target: Target, declared: Declared, images: Mapping[str, str],
           report: DriftReport, full: str, flow_name: str, deployment: Any) -> None:
    sha = deployment.version or ""
    if not git.has_commit(config.root, sha):
        raise FlowshipError(f"it runs {sha[:12] or 'no commit'}, which is not in this clone")
    workflow = declared(sha).get(flow_name)
    if workflow is None:
        raise FlowshipError(f"{sha[:12]} declares no flow {flow_name}; `flowship prune` removes such deployments")
    skip: tuple[str, ...] = ()
    try:
        infra = target.prepare(Request(workflow, scope, sha, images.get(workflow.image)))
    except FlowshipError as exc:
        infra, skip = Infrastructure(), TARGET_FIELDS
        note = f"job variables and pull steps not compared ({exc.message})"
        if note not in report.notes:
            report.notes.append(note)
    schema = parameter_schema(config, workflow, sha)
    want = desired(config, workflow, scope, commit_info(config, scope, sha), infra, target.pool, schema)
    kept_want = keep_pauses(want, deployment)
    kept = [schedule_name(schedule_key(want.schedules[i], False)) for i in sorted(kept_want.paused)]
    if deployment.paused:
        kept.insert(0, "the deployment")
    if kept:
        report.kept[full] = kept
    changes = tuple(c for c in differences(kept_want, deployment) if c.field not in skip)
    if changes:
        report.drifted.append(Drifted(full, sha, changes, deployment.id))


def describe(change: Change) -> str:
    """One field's drift as a short line: `description: 'edited' (git: 'nightly ETL')`."""
    return f"{change.field}: {_short(change.old)} (git: {_short(change.new)})"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lines(report: DriftReport) -> list[str]:
    """The report for people, one line per finding (the CLI prints these)."""
    out = []
    for d in report.drifted:
        out.append(f"drifted   {d.deployment} (at {d.commit[:12]}): " + "; ".join(describe(c) for c in d.changes))
    for name, kept in sorted(report.kept.items()):
        out.append(f"kept      {name}: paused by a person: {', '.join(kept)}")
    for name, why in sorted(report.unchecked.items()):
        out.append(f"unchecked {name}: {why}")
    out += [f"note      {n}" for n in report.notes]
    return out


def escape(text: str) -> str:
    # A field a person edited may hold anything, a pasted secret included.
    return _escape(redact(text))


def markdown(report: DriftReport) -> str:
    """A job summary section: what a person or tool changed, and that the next deploy of it puts git's back."""
    head = f"### Drift in {escape(report.scope.name)}\n\n"
    if not report.drifted and not report.kept and not report.unchecked:
        return head + f"All {report.checked} deployment(s) match what their commits declare.\n"
    rows = ["| deployment | commit | field | in Prefect | git |", "| --- | --- | --- | --- | --- |"]
    for d in report.drifted:
        for c in d.changes:
            rows.append(f"| {escape(d.deployment)} | `{d.commit[:12]}` | {escape(c.field)} | "
                        f"{escape(_short(c.old, 60))} | {escape(_short(c.new, 60))} |")
    body = "\n".join(rows) + "\n\nThe next deploy of each puts git's values back.\n" if report.drifted else ""
    extra = [f"- {escape(n)}: paused by a person, kept ({escape(', '.join(k))})" for n, k in sorted(report.kept.items())]
    extra += [f"- {escape(n)}: not checked ({escape(w)})" for n, w in sorted(report.unchecked.items())]
    return head + body + ("\n" + "\n".join(extra) + "\n" if extra else "")

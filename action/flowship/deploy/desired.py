"""The deployment a planned workflow should have, and what a deployment has now,
in one comparable shape.

Convergence compares only the fields flowship owns (below); anything else a
person changes in the Prefect UI (paused, a work queue) is left alone.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from flowship import git
from flowship.config import Config
from flowship.deploy import vcs
from flowship.deploy.state import project_tag
from flowship.deploy.target import Infrastructure
from flowship.markdown import escape
from flowship.plan import PlannedWorkflow
from flowship.redact import redact_json
from flowship.scope import Scope, deployment_tags
from flowship.workflow import AwsEcsMachine, Cron, Interval

# Prefect reads these settings when a `@flow` is defined, so setting them in the
# flow run's environment gives the workflow's retries to every attempt of that
# flow (a `@flow(retries=...)` in the code still wins). Both exist in Prefect 3.9
# (prefect.settings.models.flows: `default_retries`, `default_retry_delay_seconds`).
RETRIES_ENV = "PREFECT_FLOWS_DEFAULT_RETRIES"
RETRY_DELAY_ENV = "PREFECT_FLOWS_DEFAULT_RETRY_DELAY_SECONDS"

OWNED = (
    "version", "version_info", "description", "tags", "parameters", "parameter_openapi_schema",
    "enforce_parameter_schema", "schedules", "concurrency_limit", "work_pool_name", "job_variables",
    "pull_steps", "entrypoint",
)


@dataclass(frozen=True)
class Commit:
    """What the version info says about the deployed commit."""

    sha: str
    message: str
    branch: str  # the full branch name: cleanup finds previews by it
    repository: str
    url: str
    github: bool


def commit_info(config: Config, scope: Scope, sha: str) -> Commit:
    """The commit as Prefect's version info shows it, linking to GitHub when run there."""
    g = config.env.github
    message = vcs.subject(config.root, sha)
    repository = g.get("GITHUB_REPOSITORY")
    if repository:
        server = (g.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
        return Commit(sha, message, scope.branch, repository, f"{server}/{repository}/commit/{sha}", github=True)
    remote = git.origin_url(config.root)
    url = f"{remote}#{sha}" if remote else f"file://{config.root}#{sha}"
    return Commit(sha, message, scope.branch, remote or config.root.name, url, github=False)


def version_info(commit: Commit) -> dict[str, Any]:
    from prefect._internal.versioning import GithubVersionInfo, GitVersionInfo

    kind = GithubVersionInfo if commit.github else GitVersionInfo
    info = kind(
        version=commit.sha, commit_sha=commit.sha, message=commit.message, branch=commit.branch,
        repository=commit.repository, url=commit.url,
    )
    return info.model_dump(mode="json")


def schedule_key(schedule: Cron | Interval, active: bool) -> dict[str, Any]:
    """A schedule as convergence compares it (Prefect adds an anchor date, ids, ...)."""
    if isinstance(schedule, Cron):
        return {"cron": schedule.cron, "timezone": schedule.timezone, "active": active}
    return {"interval": float(schedule.seconds), "active": active}


def schedule_name(key: dict[str, Any]) -> str:
    """A schedule as a person names it: `cron 0 5 * * * UTC`, `every 1 h`."""
    if "cron" in key:
        return f"cron {key['cron']} {key.get('timezone') or 'UTC'}"
    if "interval" in key:
        return f"every {_duration(float(key['interval']))}"
    return str(key.get("other", "schedule"))


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class Desired:
    """One deployment as flowship wants it: `flow_name/name`."""

    flow_name: str
    name: str  # the deployment half: `main` or the branch slug
    fields: dict[str, Any]  # the OWNED fields, in the shape `current_fields` reads back
    schedules: tuple[Cron | Interval, ...] = ()
    schedules_active: bool = True
    paused: frozenset[int] = frozenset()  # indexes of `schedules` a person paused: kept paused (deploy/drift.py)


def parameter_schema(config: Config, workflow: PlannedWorkflow, sha: str, source: bytes | None = None) -> dict[str, Any]:
    """The flow's parameter schema from its source at `sha` (read here unless given), without importing it."""
    from prefect.utilities.callables import parameter_schema_from_entrypoint

    path, function = workflow.entrypoint.rsplit(":", 1)
    if source is None:
        source = vcs.show(config.root, sha, path)
    with tempfile.TemporaryDirectory(prefix="flowship-schema-") as tmp:
        copy = Path(tmp) / PurePosixPath(path).name
        copy.write_bytes(source)
        schema = parameter_schema_from_entrypoint(f"{copy}:{function}")
    return schema.model_dump(exclude_unset=True, mode="json")


def desired(
    config: Config,
    workflow: PlannedWorkflow,
    scope: Scope,
    commit: Commit,
    infra: Infrastructure,
    pool: str,
    schema: dict[str, Any],
) -> Desired:
    declared = workflow.workflow
    tags = deployment_tags(scope, commit.sha, gpu=declared.machine.is_gpu, extra=list(declared.tags))
    if project_tag(config.project) not in tags:  # whose it is: names are global on a shared server
        tags.append(project_tag(config.project))
    if (named := branch_tag(scope.branch)) not in tags:  # the slug is hashed; people search the real name
        tags.append(named)
    job_variables = dict(infra.job_variables)
    env = {str(k): str(v) for k, v in dict(job_variables.get("env") or {}).items()}
    if declared.retries is not None:
        env[RETRIES_ENV] = str(declared.retries)
    if declared.retry_delay_seconds is not None:
        env[RETRY_DELAY_ENV] = str(declared.retry_delay_seconds)
    if env:
        job_variables["env"] = env
    # Schedules run on main only; a preview keeps them, paused, so a person sees
    # what main will run without a preview ever running on a clock.
    active = scope.is_main
    fields = {
        "version": commit.sha,
        "version_info": version_info(commit),
        # Prefect's client turns a None description into the string "None".
        "description": description(declared.description, scope, commit, declared.machine, infra),
        "tags": sorted(tags),
        "parameters": dict(declared.parameters),
        "parameter_openapi_schema": schema,
        "enforce_parameter_schema": True,
        "schedules": _ordered([schedule_key(s, active) for s in declared.schedule_list]),
        "concurrency_limit": declared.concurrency_limit,
        "work_pool_name": pool,
        "job_variables": job_variables,
        "pull_steps": infra.pull_steps,
        "entrypoint": workflow.entrypoint,
    }
    # A commit message, a flow's description or a parameter may quote a secret
    # (an echoed error, a pasted URL): Prefect's UI shows these fields to everyone.
    return Desired(workflow.name, scope.name, redact_json(fields), declared.schedule_list, active)


BRANCH_TAG = "git-branch:"
_TAG_MAX = 120


def branch_tag(branch: str) -> str:
    """The branch's real name as a tag: printable, one line, bounded (Prefect keeps any string)."""
    name = "".join(c if c.isprintable() and not c.isspace() else "-" for c in branch.removeprefix("refs/heads/"))
    return BRANCH_TAG + name[: _TAG_MAX - len(BRANCH_TAG)]


def description(own: str | None, scope: Scope, commit: Commit, machine: AwsEcsMachine, infra: Infrastructure) -> str:
    """What a self-hosted Prefect UI shows of a deployment: it drops `version_info`, so the
    scope, branch, pull request, commit and machine are written out here.

    One `Key: value` paragraph each (the UI renders Markdown; the report diffs
    it by key). The workflow's own description comes first, as written; text
    from git (branch, subject) is escaped so it stays text. The same commit,
    scope and machine always give the same text: an unchanged rerun writes nothing.
    """
    if scope.is_main:
        where = "production (main): schedules active"
    else:
        pr = f", pull request #{scope.pr}" if scope.pr is not None else ""
        where = f"preview of {escape(scope.branch)}{pr}: schedules paused"
    subject = escape(commit.message.splitlines()[0] if commit.message else "")
    link = f"[{commit.sha[:12]}]({commit.url})" if commit.url.startswith(("https://", "http://")) else commit.sha[:12]
    lines = [f"Scope: {where}", f"Branch: {escape(scope.branch)}"]
    if scope.pr is not None:
        lines.append(f"Pull request: #{scope.pr}")
    lines += [f"Commit: {link} {subject}".rstrip(), f"Machine: {machine_text(machine, infra)}"]
    return "\n\n".join(([own.strip()] if own and own.strip() else []) + lines)


def machine_text(machine: AwsEcsMachine, infra: Infrastructure) -> str:
    """`GPU, 4 vCPU, 16 GiB, 1 GPU, 50 GiB storage, on gpu-g5-xlarge`: what the task gets and where."""
    parts = ["GPU" if machine.is_gpu else "CPU", f"{machine.cpu_value / 1024:g} vCPU", f"{machine.memory_value / 1024:g} GiB"]
    if machine.is_gpu:
        gpus = machine.gpu_count or 1
        parts.append(f"{gpus} GPU" + ("s" if gpus > 1 else ""))
    parts.append(f"{machine.storage} GiB storage" if machine.storage else "default storage")
    variables = infra.job_variables
    providers = [s.get("capacityProvider") for s in variables.get("capacity_provider_strategy") or ()
                 if isinstance(s, dict)]
    if providers:
        parts.append("on " + ", ".join(str(p) for p in providers))
    elif variables.get("launch_type"):
        parts.append(f"on {str(variables['launch_type']).title()}")
    else:
        parts.append("on a process worker")
    return ", ".join(parts)


def current_fields(deployment: Any) -> dict[str, Any]:
    """A `DeploymentResponse`'s OWNED fields, in `Desired.fields`' shape."""
    schedules = []
    for s in deployment.schedules:
        raw = s.schedule
        if hasattr(raw, "cron"):
            schedules.append({"cron": raw.cron, "timezone": raw.timezone or "UTC", "active": s.active})
        elif hasattr(raw, "interval"):
            schedules.append({"interval": raw.interval.total_seconds(), "active": s.active})
        else:  # an RRule someone added by hand: never equal to what flowship wants
            schedules.append({"other": str(raw), "active": s.active})
    limit = deployment.global_concurrency_limit.limit if deployment.global_concurrency_limit else None
    info = deployment.version_info.model_dump(mode="json") if deployment.version_info else None
    return {
        "version": deployment.version,
        "version_info": info,
        "description": deployment.description or "",
        "tags": sorted(deployment.tags),
        "parameters": deployment.parameters,
        "parameter_openapi_schema": deployment.parameter_openapi_schema,
        "enforce_parameter_schema": deployment.enforce_parameter_schema,
        "schedules": _ordered(schedules),
        "concurrency_limit": limit,
        "work_pool_name": deployment.work_pool_name,
        "job_variables": deployment.job_variables,
        "pull_steps": deployment.pull_steps,
        "entrypoint": deployment.entrypoint,
    }


def _ordered(schedules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Prefect returns a deployment's schedules in its own order.
    return sorted(schedules, key=lambda s: json.dumps(s, sort_keys=True))


@dataclass(frozen=True)
class Change:
    """One field flowship owns that differs: its value in Prefect now (`old`) and the one wanted.

    The report shows both, so a reviewer reads what an update does, not only
    which fields it touches.
    """

    field: str
    old: Any
    new: Any


def differences(want: Desired, deployment: Any) -> list[Change]:
    """The OWNED fields whose current value differs from the wanted one, with both values.

    A self-hosted Prefect server accepts `version_info` but does not keep it
    (only Prefect Cloud does), so it is compared only where it reads back.
    """
    have = current_fields(deployment)
    return [
        Change(name, have[name], want.fields[name]) for name in OWNED
        if want.fields[name] != have[name] and not (name == "version_info" and have[name] is None)
    ]


def schedule_creates(want: Desired) -> list[Any]:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    out, seen = [], Counter[str]()
    for index, s in enumerate(want.schedules):
        raw = (CronSchedule(cron=s.cron, timezone=s.timezone) if isinstance(s, Cron)
               else IntervalSchedule(interval=timedelta(seconds=s.seconds)))
        active = want.schedules_active and index not in want.paused
        # The slug is the schedule's name in the UI and how Prefect matches a
        # schedule across updates: what it means (`cron 0 5 * * * UTC`), made unique.
        name = schedule_name(schedule_key(s, True))
        seen[name] += 1
        slug = name if seen[name] == 1 else f"{name} ({seen[name]})"
        out.append(DeploymentScheduleCreate(schedule=raw, active=active, slug=slug))
    return out

"""Deploying a plan: converge Prefect's deployments on what the plan wants.

For each planned workflow: read what exists, never go back to an older
commit, let the target prepare, build the wanted deployment, and write only
when a field flowship owns differs. A rerun of the same commit writes
nothing. One workflow failing does not stop the others; the result says
what happened to each.

Writes are sent one after another on purpose: a SQLite Prefect server
serialises them, and 100 concurrent upserts took 6x longer than serial ones
(docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Any

from flowship import console, git
from flowship.config import Config
from flowship.deploy import lease, remote, timeouts, vcs
from flowship.deploy.client import describe, expected, unreachable, using
from flowship.deploy.drift import keep_pauses
from flowship.deploy.desired import Change, commit_info, desired, differences, parameter_schema
from flowship.deploy.result import CleanupResult, DeployResult, Outcome
from flowship.deploy.state import forget_deployed, other_project, read_last_deployed, record_deployed
from flowship.deploy.target import Request, Target
from flowship.errors import FlowshipError, InputError
from flowship.plan import Plan, PlannedWorkflow
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

def newer_deployed(config: Config, scope: Scope, deployed: str | None, head: str) -> str | None:
    """Why `head` must not replace a deployment running `deployed`, or None if it may.

    A deployment is never moved to an older commit: when what runs descends
    from `head`, a re-run or out-of-order pipeline is late and is skipped.
    When git cannot tell (the deployed commit is not in this clone), main is
    left alone and a preview (whose branch may have been force-pushed) is
    replaced.
    """
    if not deployed or deployed == head:
        return None
    ancestry = vcs.is_ancestor(config.root, head, deployed)
    if ancestry is True:
        return f"it runs {deployed[:12]}, which is newer than {head[:12]}; not going back"
    if ancestry is None and scope.is_main:
        return (
            f"it runs {deployed[:12]}, which is not in this clone, so flowship cannot tell which is newer; "
            "fetch the full history (actions/checkout with fetch-depth: 0) and deploy again"
        )
    return None


def deploy_plan(
    config: Config,
    plan: Plan,
    target: Target,
    images: Mapping[str, str] | None = None,
    *,
    force: bool = False,
    image_failures: Mapping[str, str] | None = None,
    client: SyncPrefectClient | None = None,
) -> DeployResult:
    """Converge the plan's scope on the plan: create, update, delete, skip; record the head.

    `images` maps an image family to its code image reference (`build --output`);
    `image_failures` maps a family whose build failed to the reason, and
    fails that family's workflows without touching their deployments.
    `force` deploys even over a deployment running a newer (or unknown)
    commit: a deliberate rollback. `client` is an open Prefect client to use
    instead of one for `config`.
    """
    if plan.workflows and not git.has_commit(config.root, plan.head):
        raise InputError(f"the plan's head {plan.head[:12]} is not in the repository at {config.root}; "
                         "deploy from a clone that has it (actions/checkout with fetch-depth: 0).")
    with using(config, client) as opened, ExitStack() as after, lease.held(config, plan.scope, opened) as held:
        deployer = _Deployer(config, opened, plan, target, images or {}, force, image_failures or {}, held)
        result = deployer.run()
        if deployer.outage is not None:
            from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

            # Releasing the lock (as `lease.held` exits) would spend the client's
            # retries on a server that is gone; one try will do: the lease frees itself.
            after.enter_context(temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}))
        return result


class _Deployer:
    """One deploy of one plan: the state its steps share."""

    def __init__(self, config: Config, client: SyncPrefectClient, plan: Plan, target: Target,
                 images: Mapping[str, str], force: bool, image_failures: Mapping[str, str], held: lease.Lease):
        self.config, self.client, self.plan, self.target = config, client, plan, target
        self.lease = held
        self.images, self.force, self.image_failures = images, force, image_failures
        self.scope = plan.scope
        self.flows: dict[str, Any] = {}
        self.sources: dict[str, bytes] | None = None  # the planned flow files at head, read at first need
        self.verdicts: dict[str | None, str | None] = {}  # deployed commit -> why not to replace it
        self.outage: str | None = None  # set once Prefect stopped answering: why the rest were not tried

    def run(self) -> DeployResult:
        plan, scope = self.plan, self.scope
        result = DeployResult(scope, plan.head, self.target.name)
        self.target.ensure_pool(self.client)
        names = [w.name for w in plan.workflows] + [d.name for d in plan.delete]
        self.flows = remote.flow_ids(self.client, names)
        existing = remote.deployments_of(self.client, self.flows, scope.name)
        # Timeout automations: one filtered read for the whole plan (a removed
        # timeout or a deleted flow may leave one even where none is declared).
        self.automations = timeouts.read(self.client, [f"{n}/{scope.name}" for n in names], scope)
        self.commit = commit_info(self.config, scope, plan.head) if plan.workflows else None

        steps: list[tuple[str, str | None, int | None, Callable[[], Outcome]]] = [
            (w.name, w.file, w.line, partial(self.converge, w, existing.get(w.name))) for w in plan.workflows
        ]
        steps += [(d.name, None, None, partial(self.delete, d.name, existing.get(d.name))) for d in plan.delete]
        # A circuit breaker: once Prefect stopped answering (after the client's own
        # retries), each later step would only spend those retries again, so the
        # rest fail at once with one reason and the run gets to its report.
        for name, file, line, step in steps:
            current = existing.get(name)
            known = current.id if current is not None else None
            try:
                outcome = step() if self.outage is None else Outcome(f"{name}/{scope.name}", "failed", self.outage,
                                                                      file, line, known)
            except Exception as exc:  # one workflow's failure must not stop the others
                if not expected(exc):
                    raise
                url = str(self.client.api_url).rstrip("/")
                outcome = Outcome(f"{name}/{scope.name}", "failed", describe(exc, url), file, line, known)
                if unreachable(exc):
                    self.outage = f"not tried: Prefect at {url} stopped answering."
            _say(outcome)
            result.outcomes.append(outcome)

        if result.ok:
            result.recorded = _record(self.config, self.client, scope, plan.head, self.force)
        return result

    def foreign(self, current: Any) -> str | None:
        """Why `current` is not this project's to change (not flowship's, another project's), or None."""
        if "flowship" not in current.tags:
            return "it was not made by flowship (no `flowship` tag); delete or rename it, or tag it `flowship`"
        if (other := other_project(self.config.project, list(current.tags))) is not None:
            return (f"it belongs to the flowship project {other!r}, not {self.config.project!r} (another repository "
                    "on this Prefect server), and deployment names are per flow and scope; rename one of the flows")
        return None

    def too_old(self, current: Any) -> str | None:
        """Why not to touch `current` (someone else's, or newer than the plan), or None."""
        if reason := self.foreign(current):
            return reason
        if self.force:
            return None
        # Deployments of one scope mostly run the same few commits: ask git once per commit.
        if current.version not in self.verdicts:
            self.verdicts[current.version] = newer_deployed(self.config, self.scope, current.version, self.plan.head)
        return self.verdicts[current.version]

    def still_older(self, flow_name: str) -> str | None:
        """`too_old` of the deployment as it is now, read again right before a write.

        What was read at the start is current while the lease is intact (it was
        read under the lease, and no other flowship deploy of the scope can have
        written since): then the read is skipped, a third of a first deploy's
        requests. Once a renewal failed, another deploy may have moved it.
        """
        from prefect.exceptions import ObjectNotFound

        if self.lease.intact():
            return None

        try:
            latest = self.client.read_deployment_by_name(f"{flow_name}/{self.scope.name}")
        except ObjectNotFound:
            return None
        return self.too_old(latest)

    def source(self, workflow: PlannedWorkflow) -> bytes | None:
        """A planned flow's file at head. The first call reads every planned file in one
        git call: one `git cat-file` each would cost a first deploy of 200 about 3 s."""
        if self.sources is None:
            paths = sorted({w.entrypoint.rsplit(":", 1)[0] for w in self.plan.workflows})
            blobs = git.ls_tree(self.config.root, self.plan.head, *paths)
            data = git.read_blobs(self.config.root, blobs.values())
            self.sources = {path: data[blob] for path, blob in blobs.items() if blob in data}
        return self.sources.get(workflow.entrypoint.rsplit(":", 1)[0])

    def converge(self, workflow: PlannedWorkflow, current: Any) -> Outcome:
        head = self.plan.head
        full = f"{workflow.name}/{self.scope.name}"
        where: dict[str, Any] = {"file": workflow.file, "line": workflow.line}
        if workflow.image in self.image_failures:
            raise FlowshipError(f"its {workflow.image!r} image did not build ({self.image_failures[workflow.image]})")
        if current is not None and (reason := self.too_old(current)):
            if self.foreign(current):  # someone else's deployment holds the name
                raise FlowshipError(f"{full} exists and {reason}")
            return Outcome(full, "skipped", reason, **where, deployment_id=current.id)
        infra = self.target.prepare(Request(workflow, self.scope, head, self.images.get(workflow.image)))
        if current is not None and current.version == head and current.parameter_openapi_schema:
            # The schema is a function of the flow's source at `head`, and this
            # deployment was made from exactly that: reading it again would
            # cost most of an unchanged rerun's time.
            schema = current.parameter_openapi_schema
        else:
            try:
                schema = parameter_schema(self.config, workflow, head, self.source(workflow))
            except (OSError, SyntaxError, ValueError) as exc:
                raise FlowshipError(f"cannot read the parameters of {workflow.entrypoint} at {head[:12]}: {exc}") from None
        assert self.commit is not None
        # A person's pause of one of main's schedules is kept (docs/deploy.md, "Drift").
        want = keep_pauses(desired(self.config, workflow, self.scope, self.commit, infra, self.target.pool, schema),
                           current)
        if reason := self.still_older(workflow.name) if current is None or differences(want, current) else None:
            return Outcome(full, "skipped", reason, **where, deployment_id=current.id if current else None)
        if current is None:
            flow_id = self.flows.get(workflow.name) or self.client.create_flow_from_name(workflow.name)
            self.flows[workflow.name] = flow_id
            deployment_id = remote.upsert(self.client, flow_id, want)
            self.converge_timeout(workflow, deployment_id)
            return Outcome(full, "created", f"at {head[:12]}", **where, deployment_id=deployment_id)
        changed = differences(want, current)
        if changed:
            remote.upsert(self.client, current.flow_id, want)  # an upsert: the id stays
        names = [c.field for c in changed]
        before = timeouts.seconds(self.automations.get(full))
        if timeout := self.converge_timeout(workflow, current.id):
            names.append(timeout)
            changed.append(Change("timeout_seconds", before, workflow.workflow.timeout_seconds or None))
        if not changed:
            return Outcome(full, "unchanged", "", **where, deployment_id=current.id)
        return Outcome(full, "updated", ", ".join(names), **where, deployment_id=current.id, changes=tuple(changed))

    def converge_timeout(self, workflow: PlannedWorkflow, deployment_id: Any) -> str | None:
        full = f"{workflow.name}/{self.scope.name}"
        return timeouts.converge(self.client, full, self.scope, deployment_id, workflow.workflow.timeout_seconds,
                                 self.automations.get(full))

    def delete(self, flow_name: str, current: Any) -> Outcome:
        full = f"{flow_name}/{self.scope.name}"
        gone = False
        if current is not None:
            if reason := self.too_old(current) or self.still_older(flow_name):
                return Outcome(full, "skipped", reason, deployment_id=current.id)
            gone = remote.delete(self.client, current.id)
        if (automation := self.automations.get(full)) is not None:
            timeouts.delete(self.client, automation.id)
        self.target.cleanup(flow_name, self.scope)
        return Outcome(full, "deleted", "" if gone else "it was already gone")


def _record(config: Config, client: SyncPrefectClient, scope: Scope, head: str, force: bool) -> bool:
    """Record `head` as deployed when it moves the record forward (read under the deploy lease).

    Main's record moves only to a descendant of what it says: a late older
    run, or one of a diverged line, leaves it (planning from an older record
    deploys more, never less). A preview's branch may be force-pushed, so
    there only a known-newer record is kept; an unknown one would otherwise
    pin the preview's base forever.
    """
    previous = read_last_deployed(config, scope, client=client)
    if not force and previous and previous != head:
        if scope.is_main and vcs.is_ancestor(config.root, previous, head) is not True:
            return False
        if vcs.is_ancestor(config.root, head, previous) is True:
            return False
    record_deployed(config, scope, head, client=client)
    return True


def _say(outcome: Outcome) -> None:
    text = f"{outcome.status:<9} {outcome.deployment}" + (f" ({outcome.detail})" if outcome.detail else "")
    if outcome.status == "failed":
        console.error(f"{outcome.deployment}: {outcome.detail}", file=outcome.file, line=outcome.line,
                      title="flowship deploy")
    elif outcome.status == "skipped":
        console.warning(text)
    else:
        console.info(text)


def cleanup_branch(
    config: Config, branch: str, target: Target, *, client: SyncPrefectClient | None = None
) -> CleanupResult:
    """Delete the preview deployments of `branch` (and what the target made for them).

    Only deployments tagged `flowship`, `scope:preview` and `branch:<slug>`
    go, each checked again before it is deleted; the default branch is
    refused outright, so production can never be cleaned up by mistake.
    """
    if branch.removeprefix("refs/heads/") == config.default_branch:
        raise InputError(f"{branch!r} is the default branch; cleanup removes previews only and never touches main.")
    with using(config, client) as opened:
        return _cleanup(config, branch, target, opened)


def _cleanup(config: Config, branch: str, target: Target, client: SyncPrefectClient) -> CleanupResult:
    scope = Scope.preview(branch)
    result = CleanupResult(branch, scope.slug)
    tags = ["flowship", "scope:preview", f"branch:{scope.slug}"]
    for flow_name, deployment in remote.tagged(client, tags):
        full = f"{flow_name}/{deployment.name}"
        # The filter asked for these tags; check again, so a server that
        # ignored the filter (or a hand-tagged main) can never lose main.
        if not set(tags) <= set(deployment.tags) or "scope:main" in deployment.tags or deployment.name != scope.name:
            console.warning(f"left {full} alone: its tags or name do not match the preview of {branch}")
            continue
        if (other := other_project(config.project, list(deployment.tags))) is not None:
            console.warning(f"left {full} alone: it is the preview of project {other!r}, not {config.project!r}")
            continue
        try:
            remote.delete(client, deployment.id)
            target.cleanup(flow_name, scope)
        except Exception as exc:
            if not expected(exc):
                raise
            result.failed[full] = describe(exc)
            console.error(f"{full}: {result.failed[full]}")
            continue
        result.deleted.append(full)
        console.info(f"deleted   {full}")
    # Their timeout automations, and any left by a deployment deleted by hand.
    for automation in timeouts.of_preview(client, scope):
        try:
            timeouts.delete(client, automation.id)
        except Exception as exc:
            if not expected(exc):
                raise
            result.failed[automation.name] = describe(exc)
            console.error(f"{automation.name}: {result.failed[automation.name]}")
    result.forgot = forget_deployed(config, scope, client=client)
    return result

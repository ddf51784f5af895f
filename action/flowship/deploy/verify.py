"""Smoke runs after a deploy to main, and putting back what fails them.

A workflow that declares `smoke={...}` gets one short run with those
parameters once a deploy to main created or updated its deployment, on its
real infrastructure, followed for at most its `timeout_seconds` (else
`DEFAULT_TIMEOUT`). When that run does not complete, the deployment is put
back exactly as it was before the deploy (`snapshot`): the same fields, so
the same task definition ARN and code image by digest, nothing rebuilt; and
main's record goes back to the commit it named before, so the next push
plans from there and deploys that workflow again. A rollback only ever moves
a deployment to an ancestor of the head, and only while the deployment still
runs the head (a newer deploy meanwhile wins).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowship.config import Config
from flowship.deploy import lease, remote, vcs
from flowship.deploy.client import using
from flowship.deploy.core import DeployResult
from flowship.deploy.runs import follow, run_url
from flowship.deploy.state import forget_deployed, read_last_deployed, record_deployed, record_rollback
from flowship.plan import Plan
from flowship.scope import MAIN, deployment_name

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

DEFAULT_TIMEOUT = 600.0  # seconds a smoke run of a workflow without a timeout may take


@dataclass(frozen=True)
class Before:
    """What main looked like before a deploy: its record and the deployments that have a smoke run."""

    record: str | None
    deployments: Mapping[str, Any]  # flow name -> DeploymentResponse


@dataclass(frozen=True)
class Smoke:
    """One smoke run and what came of it."""

    deployment: str  # `<flow>/<scope>`
    passed: bool
    state: str
    message: str = ""
    url: str | None = None
    flow_run_id: UUID | None = None
    rolled_back_to: str | None = None  # the commit it was put back on
    note: str = ""  # why it was not rolled back

    def line(self) -> str:
        """`weekly-training rolled back to a1b2c3d: smoke run failed: <state message>`, and the like."""
        flow, _, scope = self.deployment.partition("/")
        name = flow if scope == MAIN else self.deployment  # a preview's is named with its scope
        where = f" ({self.url})" if self.url else ""
        if self.passed:
            return f"{name}: smoke run completed{where}"
        why = f"smoke run {self.state.lower()}" + (f": {self.message}" if self.message else "")
        if scope != MAIN:
            return f"{name}: {why}{where}"  # a preview is only reported, never rolled back
        if self.rolled_back_to:
            return f"{flow} rolled back to {self.rolled_back_to[:7]}: {why}{where}"
        return f"{flow} kept its new commit: {why}{where}" + (f"; {self.note}" if self.note else "")


@dataclass
class VerifyResult:
    smokes: list[Smoke] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.passed for s in self.smokes)

    @property
    def rolled_back(self) -> list[Smoke]:
        return [s for s in self.smokes if s.rolled_back_to]


def smoked(plan: Plan) -> dict[str, dict[str, Any]]:
    """The planned workflows that declare a smoke run: name -> its parameters."""
    return {w.name: dict(w.workflow.smoke) for w in plan.workflows if w.workflow.smoke is not None}


def snapshot(config: Config, plan: Plan, *, client: SyncPrefectClient | None = None) -> Before:
    """Main as it is now, for `verify` to put back: read before `deploy_plan`.

    A preview is never put back (`verify`), so there is nothing of it to read.
    """
    if not plan.scope.is_main:
        return Before(None, {})
    names = list(smoked(plan))
    with using(config, client) as opened:
        existing = remote.deployments_of(opened, remote.flow_ids(opened, names), plan.scope.name) if names else {}
        return Before(read_last_deployed(config, plan.scope, client=opened), existing)


def verify(
    config: Config, plan: Plan, result: DeployResult, before: Before, *, rollback: bool = True,
    say: Callable[[str], None], poll: float = 2.0, client: SyncPrefectClient | None = None,
) -> VerifyResult:
    """Start a smoke run of each workflow this deploy created or updated, follow them, roll back failures.

    On a preview (asked for by its pull request) the unchanged ones run too, since adding the
    label deploys nothing new, and nothing is rolled back: a preview only reports.
    """
    out = VerifyResult()
    params = smoked(plan)
    timeouts = {w.name: float(w.workflow.timeout_seconds or DEFAULT_TIMEOUT) for w in plan.workflows}
    live = ("created", "updated") if plan.scope.is_main else ("created", "updated", "unchanged")
    rollback = rollback and plan.scope.is_main
    targets = {o.deployment.split("/", 1)[0]: o.deployment_id for o in result.outcomes
               if o.status in live and o.deployment_id is not None}
    with using(config, client) as opened:
        started = {}
        for name in sorted(set(params) & set(targets)):
            flow_run = opened.create_flow_run_from_deployment(targets[name], parameters=params[name])
            url = run_url(config, flow_run.id)
            say(f"smoke run {flow_run.name} of {deployment_name(name, plan.scope)}" + (f": {url}" if url else ""))
            started[name] = (flow_run, time.monotonic() + timeouts[name])
        for name, (flow_run, until) in started.items():
            smoke = _followed(config, opened, deployment_name(name, plan.scope), flow_run.id, until, poll, say)
            if not smoke.passed and rollback:
                smoke = _rolled_back(config, opened, plan, before, smoke)
            say(smoke.line())
            out.smokes.append(smoke)
        if out.rolled_back:
            # Main's record goes back too, so the next push plans from it and
            # deploys the workflows put back again (and smoke-runs them).
            with lease.held(config, plan.scope, opened):
                if before.record:
                    record_deployed(config, plan.scope, before.record, client=opened)
                else:
                    forget_deployed(config, plan.scope, client=opened)
    return out


def _followed(config: Config, client: SyncPrefectClient, full: str, flow_run_id: UUID, until: float, poll: float,
              say: Callable[[str], None]) -> Smoke:
    from prefect.states import Cancelling

    finished = follow(client, flow_run_id, on_state=lambda state, _: say(f"  {full}: {state}"),
                      on_log=lambda _: None, poll=poll, until=until)
    state = finished.run.state
    url = run_url(config, flow_run_id)
    if state is None or not state.is_final():
        client.set_flow_run_state(flow_run_id, Cancelling(message="flowship: the smoke run took too long"), force=True)
        return Smoke(full, False, "timed out", "it did not finish within the workflow's timeout", url, flow_run_id)
    message = " ".join((state.message or "").split())[:300]
    return Smoke(full, state.is_completed(), (state.name or str(state.type)), message, url, flow_run_id)


def _rolled_back(config: Config, client: SyncPrefectClient, plan: Plan, before: Before, smoke: Smoke) -> Smoke:
    from dataclasses import replace

    name = smoke.deployment.split("/", 1)[0]
    previous = before.deployments.get(name)
    if previous is None or not previous.version:
        return replace(smoke, note="there is no earlier deployment of it to go back to")
    if previous.version == plan.head:
        return replace(smoke, note=f"it already ran {plan.head[:12]} before this deploy")
    if vcs.is_ancestor(config.root, previous.version, plan.head) is not True:
        return replace(smoke, note=f"{previous.version[:12]} is not an ancestor of {plan.head[:12]}; not going there")
    with lease.held(config, plan.scope, client):
        now = client.read_deployment_by_name(smoke.deployment)
        if now.version != plan.head:  # deployed again meanwhile: that deploy decides
            return replace(smoke, note=f"it runs {str(now.version)[:12]} now")
        restore(client, previous)
        reason = f"smoke run {smoke.state.lower()}" + (f": {smoke.message}" if smoke.message else "")
        record_rollback(config, plan.scope, name, head=plan.head, to=previous.version, reason=reason, client=client)
    return replace(smoke, rolled_back_to=previous.version)


def restore(client: SyncPrefectClient, previous: Any) -> None:
    """Write `previous` (a DeploymentResponse read before the deploy) back as it was; the id stays."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    limit = previous.global_concurrency_limit.limit if previous.global_concurrency_limit else None
    client.create_deployment(
        flow_id=previous.flow_id, name=previous.name, version=previous.version,
        version_info=previous.version_info, description=previous.description, tags=list(previous.tags),
        parameters=previous.parameters, parameter_openapi_schema=previous.parameter_openapi_schema,
        enforce_parameter_schema=previous.enforce_parameter_schema,
        schedules=[DeploymentScheduleCreate(schedule=s.schedule, active=s.active, slug=s.slug)
                   for s in previous.schedules],
        concurrency_limit=limit, work_pool_name=previous.work_pool_name, work_queue_name=previous.work_queue_name,
        job_variables=previous.job_variables, pull_steps=previous.pull_steps, entrypoint=previous.entrypoint,
        paused=previous.paused,
    )

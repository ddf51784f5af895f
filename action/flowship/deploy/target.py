"""Where deployments go: the one Protocol the local and ECS targets implement.

Everything that is the same wherever a deployment runs (names, tags,
parameters, schedules, version info, convergence, never going backwards)
lives in `flowship.deploy.core`. A target answers only what differs:

- which Prefect work pool its deployments use, and making sure it exists;
- what a workflow's deployment needs to run that commit's code there: its
  job variables (ECS: `task_definition_arn`, launch type or capacity provider
  strategy, ...) and pull steps (local: change into a checkout of the commit);
- releasing what it made for a workflow once its deployment is deleted
  (ECS: deregister the task definitions).

A target is built from the one `Config` (`LocalTarget(config)`,
`flowship.ecs.EcsTarget(config)`); `flowship.commands.targets.make_target`
picks one, since only the commands compose stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from flowship.plan import PlannedWorkflow
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

@dataclass(frozen=True)
class Request:
    """What a target gets to prepare one workflow's deployment."""

    workflow: PlannedWorkflow
    scope: Scope
    head: str  # the full commit sha being deployed
    image: str | None = None  # the code image of the workflow's family (`registry/repo@sha256:...`), if built


@dataclass(frozen=True)
class Infrastructure:
    """A target's part of one deployment, written into it as given.

    `job_variables` are the work pool's job variables (the core adds the
    retry settings under `env`); `pull_steps` are Prefect deployment steps
    run before the flow is loaded (None: the pool's default, e.g. the image's
    working directory).
    """

    job_variables: dict[str, Any] = field(default_factory=dict)
    pull_steps: list[dict[str, Any]] | None = None


@runtime_checkable
class Target(Protocol):
    """Where deployments go. Implementations: `LocalTarget`, `flowship.ecs.EcsTarget`."""

    name: str  # "local" or "ecs", for output

    @property
    def pool(self) -> str:
        """The Prefect work pool every deployment of this target is written into."""
        ...

    def ensure_pool(self, client: SyncPrefectClient) -> None:
        """Make sure `pool` exists and fits this target, creating it if missing.

        Called once per deploy before any workflow. Idempotent: when the pool
        exists and fits, it writes nothing. Raises `FlowshipError` when the
        pool exists but cannot work (another type), saying how to fix it.
        """
        ...

    def prepare(self, request: Request) -> Infrastructure:
        """Everything a workflow's deployment needs to run exactly `request.head` here.

        Called once per planned workflow, after the core decided it may deploy
        it (never for a workflow skipped as older than what runs), before the
        Prefect write. Must be idempotent: preparing the same request twice
        returns equal `Infrastructure` and creates nothing the second time
        (ECS: no new task definition revision when the definition is
        unchanged), because convergence compares what it returns with what
        the deployment holds. Raises `FlowshipError` for a failure of this
        workflow only; the core reports it and goes on with the others.
        """
        ...

    def cleanup(self, flow_name: str, scope: Scope) -> None:
        """Release what `prepare` made for the deployment `<flow_name>/<scope>`.

        Called after that deployment was deleted (a deleted flow, a closed
        preview), and also when it was already gone, so it must tolerate
        finding nothing. Never touches another scope's resources.
        """
        ...

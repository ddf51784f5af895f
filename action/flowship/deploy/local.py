"""The local target (the embedded default): a Prefect process work pool on this machine.

A deployment must run exactly the planned commit's code, not whatever the
working tree holds when a worker picks the run up. So each deployed commit
is materialised once (`git archive`) under `.flowship/checkouts/<sha>` and the
deployment's pull step changes into it before Prefect loads the flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flowship import console
from flowship.config import Config
from flowship.deploy import vcs
from flowship.deploy.target import Infrastructure, Request
from flowship.errors import FlowshipError
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

PROCESS = "process"


class LocalTarget:
    """Deployments in a process work pool (`config.local_pool`), run from a checkout per commit."""

    name = "local"

    def __init__(self, config: Config, checkouts: Path | None = None):
        self.config = config
        # Beside the repository by default (.flowship/ is git-ignored);
        # FLOWSHIP_CHECKOUTS_DIR moves it where the process worker reads.
        base = Path(config.env.checkouts_dir) if config.env.checkouts_dir else config.root / ".flowship" / "checkouts"
        self.checkouts = (checkouts or base).resolve()

    @property
    def pool(self) -> str:
        return self.config.local_pool

    def ensure_pool(self, client: SyncPrefectClient) -> None:
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

        try:
            pool = client.read_work_pool(self.pool)
        except ObjectNotFound:
            pool = None
        if pool is not None:
            if pool.type != PROCESS:
                raise FlowshipError(
                    f"the work pool {self.pool!r} is of type {pool.type!r}, not {PROCESS!r}; "
                    "the local target needs a process pool: set [tool.flowship.pools] local to another name"
                )
            return
        # Only a missing pool needs the process worker's template: importing it is ~0.2 s of every deploy.
        from prefect.workers.process import ProcessWorker

        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=self.pool,
                    type=PROCESS,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="flowship's local deployments (start a worker: prefect worker start --pool "
                    f"{self.pool})",
                )
            )
        except ObjectAlreadyExists:  # created meanwhile by a concurrent deploy
            return
        console.info(f"created the process work pool {self.pool!r}")

    def checkout(self, sha: str) -> Path:
        """The folder holding exactly commit `sha`'s tree."""
        return vcs.materialize(self.config.root, sha, self.checkouts / sha)

    def prepare(self, request: Request) -> Infrastructure:
        folder = self.checkout(request.head)
        return Infrastructure(
            # Results stay on this machine, so `flowship run --wait` can show what the flow returned.
            job_variables={"env": {"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"}},
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(folder)}}],
        )

    def cleanup(self, flow_name: str, scope: Scope) -> None:
        # Checkouts are per commit and shared by every deployment of that
        # commit, in every scope; they are left for the next deploy to reuse.
        return None

"""What a deploy or a preview's cleanup did to each deployment: the six statuses and the results.

Its own module so that whoever reports results (the CLI, the job summary, the
PR comment) reads them without importing the deployer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from flowship.deploy.desired import Change
from flowship.scope import Scope

Status = Literal["created", "updated", "unchanged", "skipped", "deleted", "failed"]
STATUSES: tuple[Status, ...] = ("created", "updated", "unchanged", "skipped", "deleted", "failed")


@dataclass(frozen=True)
class Outcome:
    """What happened to one deployment, and why (changed fields, a reason, an error)."""

    deployment: str  # `<flow>/<scope>`
    status: Status
    detail: str = ""
    file: str | None = None
    line: int | None = None
    # The deployment's Prefect id where it exists: callers link to it and start
    # runs of it without reading every deployment again by name.
    deployment_id: UUID | None = None
    changes: tuple[Change, ...] = ()  # an update's fields, old and new values


@dataclass
class DeployResult:
    scope: Scope
    head: str
    target: str
    outcomes: list[Outcome] = field(default_factory=list)
    recorded: bool = False  # whether `head` was recorded as the scope's last deployed commit

    def named(self, status: Status) -> list[str]:
        return [o.deployment for o in self.outcomes if o.status == status]

    @property
    def created(self) -> list[str]:
        return self.named("created")

    @property
    def updated(self) -> list[str]:
        return self.named("updated")

    @property
    def unchanged(self) -> list[str]:
        return self.named("unchanged")

    @property
    def deleted(self) -> list[str]:
        return self.named("deleted")

    @property
    def skipped(self) -> dict[str, str]:
        return {o.deployment: o.detail for o in self.outcomes if o.status == "skipped"}

    @property
    def failed(self) -> dict[str, str]:
        return {o.deployment: o.detail for o in self.outcomes if o.status == "failed"}

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class CleanupResult:
    branch: str
    slug: str
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    forgot: bool = False  # whether the scope's recorded commit was dropped

    @property
    def ok(self) -> bool:
        return not self.failed

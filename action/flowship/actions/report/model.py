"""What a `flowship ci` run did, as data: the report's input.

The deploy statuses are deploy's own (`flowship.deploy.result.STATUSES`), so
a status added there is one the report knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowship.deploy.result import Status
from flowship.deploy.desired import Change
from flowship.deploy.merge import MergePreview
from flowship.errors import Problem
from flowship.plan import Plan
from flowship.scope import Scope

if TYPE_CHECKING:
    from flowship.ecs.costs import Costs


@dataclass(frozen=True)
class DeploymentLine:
    name: str  # `<flow>/<scope>`
    status: Status
    detail: str = ""  # why skipped or failed; an update's field names
    url: str | None = None  # the Prefect UI page of the deployment
    run_url: str | None = None  # the Prefect UI form that starts a run
    changes: tuple[Change, ...] = ()  # an update's fields, old and new
    file: str | None = None
    line: int | None = None

    @classmethod
    def of(cls, outcome: Any, url: str | None = None) -> DeploymentLine:
        """The line of a `deploy.Outcome`; `url` is its Prefect UI page where it exists."""
        return cls(outcome.deployment, outcome.status, outcome.detail, url, f"{url}/run" if url else None,
                   tuple(outcome.changes), outcome.file, outcome.line)


@dataclass(frozen=True)
class ImageLine:
    family: str
    ref: str | None  # registry/repo@sha256:..., None when it failed
    rebuilt: bool  # the deps image was built (its inputs changed), else reused
    error: str | None = None


@dataclass(frozen=True)
class RunLine:
    deployment: str
    state: str
    url: str | None = None


@dataclass(frozen=True)
class Report:
    title: str  # one line: what this run was, e.g. "Preview of `feat/x` (#12)"
    scope: Scope | None = None
    head: str | None = None
    base: str | None = None
    plan: Plan | None = None
    notes: tuple[str, ...] = ()  # plain sentences: why nothing deployed, fork, dry run; "Failed: ..."
    images: tuple[ImageLine, ...] = ()
    deployments: tuple[DeploymentLine, ...] = ()
    runs: tuple[RunLine, ...] = ()
    problems: tuple[Problem, ...] = ()  # `file:line: message`; default: the plan's
    run_url: str | None = None  # this Actions run
    prefect_ui_url: str | None = None
    pr_title: str | None = None
    links: dict[str, str] = field(default_factory=dict)  # extra named links (the PR comment)
    repository_url: str | None = None  # https://github.com/owner/name: commit and compare links
    merge: MergePreview | None = None  # a preview's effect on main if merged (deploy/merge.py)
    costs: Costs | None = None  # one run's estimated cost per planned workflow (ecs/costs.py)

    def commit_url(self, sha: str | None) -> str | None:
        return f"{self.repository_url}/commit/{sha}" if self.repository_url and _sha(sha) else None

    def compare_url(self, old: str | None, new: str | None) -> str | None:
        # A deployment's version is read back from Prefect, where anyone with
        # access may have set it: only a commit id goes into a link.
        if self.repository_url and _sha(old) and _sha(new) and old != new:
            return f"{self.repository_url}/compare/{old}...{new}"
        return None

    def placed_problems(self) -> tuple[Problem, ...]:
        """The declaration problems (`file:line`): each one a flow that did not deploy."""
        return self.problems or (self.plan.problems if self.plan else ())

    def loose_problems(self) -> tuple[str, ...]:
        """What planning noted that is tied to no place in the repository."""
        return self.plan.notes if self.plan else ()


_SHA = re.compile(r"[0-9a-f]{7,64}")


def _sha(value: object) -> bool:
    return isinstance(value, str) and _SHA.fullmatch(value) is not None

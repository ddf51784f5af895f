"""Prefect deployments: where they go (`Target`), converging on a plan, previews' cleanup.

Importing this package is light: Prefect is imported inside the functions
that talk to it, so planning can read the last deployed commit without
paying for more than that call.
"""

from flowship.deploy.core import cleanup_branch, deploy_plan, newer_deployed
from flowship.deploy.local import LocalTarget
from flowship.deploy.result import STATUSES, CleanupResult, DeployResult, Outcome
from flowship.deploy.state import read_last_deployed, record_deployed
from flowship.deploy.target import Infrastructure, Request, Target

__all__ = [
    "STATUSES",
    "CleanupResult",
    "DeployResult",
    "Infrastructure",
    "LocalTarget",
    "Outcome",
    "Request",
    "Target",
    "cleanup_branch",
    "deploy_plan",
    "newer_deployed",
    "read_last_deployed",
    "record_deployed",
]

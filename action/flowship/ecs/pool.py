"""The Prefect ECS work pool flowship deploys to: its base job template and its check.

The template is prefect-aws's own default (`ECSWorker.get_default_base_job_template()`)
extended so a pool can carry GPU work on its own, too: a `resource_requirements`
variable on the container and `requires_compatibilities` on the task
definition. flowship's deployments name their task definition by ARN, so the
worker registers nothing for them; the extension serves runs of other
deployments on the same pool. Defaults (cluster, roles, network, the API key
secret) come from `[tool.flowship.aws]`, so a hand-made deployment on the
pool lands in the same place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from flowship.config import Config
from flowship.errors import FlowshipError

ECS_POOL_TYPE = "ecs"
# The job variables flowship sets on every ECS deployment (ecs.job_variables):
# a pool whose template lacks one of them would silently ignore it.
REQUIRED_VARIABLES = (
    "task_definition_arn", "cluster", "launch_type", "capacity_provider_strategy",
    "vpc_id", "network_configuration", "prefect_api_key_secret_arn",
)
# The variables whose defaults come from [tool.flowship.aws] (bootstrap keeps them current).
DEFAULTED_VARIABLES = (
    "cluster", "execution_role_arn", "task_role_arn", "prefect_api_key_secret_arn", "vpc_id", "network_configuration",
)
EXTRA_VARIABLES: dict[str, dict[str, Any]] = {
    "resource_requirements": {
        "title": "Resource requirements",
        "description": "ECS resourceRequirements for the flow's container, e.g. "
        '[{"type": "GPU", "value": "1"}]. Needs EC2 capacity with GPUs.',
        "type": "array",
        "items": {"type": "object"},
        "default": [],
    },
    "requires_compatibilities": {
        "title": "Requires compatibilities",
        "description": 'The task definition\'s launch types, e.g. ["EC2"] for GPU work.',
        "type": "array",
        "items": {"type": "string"},
        "default": [],
    },
}


def base_job_template(config: Config, network: dict[str, Any] | None = None) -> dict[str, Any]:
    """prefect-aws's default ECS template, GPU-capable, with flowship's defaults."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    template = copy.deepcopy(ECSWorker.get_default_base_job_template())
    variables = template["variables"]["properties"]
    variables.update(copy.deepcopy(EXTRA_VARIABLES))
    task_definition = template["job_configuration"]["task_definition"]
    task_definition["containerDefinitions"][0]["resourceRequirements"] = "{{ resource_requirements }}"
    task_definition["requiresCompatibilities"] = "{{ requires_compatibilities }}"
    defaults = {
        "cluster": config.aws.cluster,
        "execution_role_arn": config.aws.execution_role_arn,
        "task_role_arn": config.aws.task_role_arn,
        "prefect_api_key_secret_arn": config.aws.prefect_api_key_secret_arn,
        **(network or {}),
    }
    for name, value in defaults.items():
        if value:
            variables[name]["default"] = value
    return template


@dataclass(frozen=True)
class PoolCheck:
    exists: bool
    problems: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.exists and not self.problems


def check_pool(pool: Any | None, name: str) -> PoolCheck:
    """Whether a read work pool (or None) can take flowship's ECS deployments."""
    if pool is None:
        return PoolCheck(False, (f"the Prefect work pool {name!r} does not exist",))
    problems = []
    if pool.type != ECS_POOL_TYPE:
        problems.append(
            f"the work pool {name!r} is of type {pool.type!r}, not {ECS_POOL_TYPE!r} (prefect-aws's ECS worker); "
            "a pool's type cannot change, so name another one in [tool.flowship.pools] ecs"
        )
    else:
        template = pool.base_job_template or {}
        have = set((template.get("variables") or {}).get("properties") or {})
        missing = [v for v in REQUIRED_VARIABLES if v not in have]
        if missing:
            problems.append(f"the work pool {name!r}'s base job template lacks the variable(s) {', '.join(missing)}")
    return PoolCheck(True, tuple(problems))


def read_pool(client: Any, name: str) -> Any | None:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_work_pool(name)
    except ObjectNotFound:
        return None


def ensure_ecs_pool(config: Config, client: Any) -> None:
    """Raise, with the fix, unless the ECS pool exists and fits flowship's job variables."""
    check = check_pool(read_pool(client, config.ecs_pool), config.ecs_pool)
    if not check.fits:
        raise FlowshipError(f"{'; '.join(check.problems)}. Run `flowship bootstrap --target ecs` to create or fix it.")

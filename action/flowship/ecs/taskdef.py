"""The ECS task definition a workflow needs in a scope, as data (no AWS calls).

One family per workflow and scope, `<project>-<flow>--<scope>`: the scope
(`main` or a branch slug) never contains `--`, so the last `--` splits a
family back into flow and scope, and no two (flow, scope) pairs share one.
What flowship writes is compared key by key with what ECS has, so a rerun
registers no new revision (`differences`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowship.config import Config, GpuCapacity
from flowship.errors import InputError
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine

# The prefect-aws worker looks for a container of this name in a task
# definition given by ARN; naming ours the same makes it the flow's container.
CONTAINER = "prefect"
FAMILY_MAX = 255
SCOPE_SEPARATOR = "--"
_FAMILY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# ECS tag values allow letters, digits, spaces and `_ . : / = + - @`.
_TAG_CHARS = re.compile(r"[^A-Za-z0-9 _.:/=+@-]+")

# The top-level keys and container keys flowship owns; everything else on a
# described task definition (arn, revision, defaults ECS fills in) is ignored
# when comparing, and a key flowship stops setting counts as a difference.
TOP_KEYS = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "requiresCompatibilities",
    "cpu", "memory", "ephemeralStorage", "runtimePlatform",
)
CONTAINER_KEYS = (
    "name", "image", "essential", "cpu", "memory", "environment", "secrets",
    "resourceRequirements", "logConfiguration",
)


def family_name(project: str, flow: str, scope: Scope) -> str:
    """`<project>-<flow>--<scope>` in ECS's family characters, at most 255.

    A flow or project name that had to change (characters ECS does not
    allow, `--` inside it, or length) gets a short hash of the original, so
    two flows or two projects never share a family.
    """
    clean = _FAMILY_CHARS.sub("-", flow).strip("-")
    while SCOPE_SEPARATOR in clean:
        clean = clean.replace(SCOPE_SEPARATOR, "-")
    prefix = _FAMILY_CHARS.sub("-", project).strip("-") or "flowship"
    while SCOPE_SEPARATOR in prefix:
        prefix = prefix.replace(SCOPE_SEPARATOR, "-")
    if prefix != project:  # `octo/flows` and `octo-flows` are two projects: never one family
        prefix = f"{prefix[:64]}-{hashlib.sha256(project.encode()).hexdigest()[:8]}"
    room = FAMILY_MAX - len(prefix) - len(SCOPE_SEPARATOR) - len(scope.name) - 1
    if clean != flow or len(clean) > room or not clean:
        digest = hashlib.sha256(flow.encode()).hexdigest()[:8]
        clean = f"{clean[: room - 9].rstrip('-')}-{digest}".lstrip("-")
    return f"{prefix}-{clean}{SCOPE_SEPARATOR}{scope.name}"


@dataclass(frozen=True)
class TaskDefinitionSpec:
    """What to register for one workflow in one scope, and where it runs."""

    family: str
    request: dict[str, Any]  # `register_task_definition` keyword arguments, without tags
    tags: tuple[tuple[str, str], ...]
    capacity: GpuCapacity | None  # the GPU capacity provider; None = Fargate

    def tag_list(self) -> list[dict[str, str]]:
        return [{"key": k, "value": v} for k, v in self.tags]


def tag_value(value: str) -> str:
    return _TAG_CHARS.sub("-", value)[:256] or "-"


def build_spec(
    config: Config,
    *,
    flow: str,
    machine: AwsEcsMachine,
    scope: Scope,
    image: str,
    sha: str,
    region: str,
    capacity: GpuCapacity | None,
) -> TaskDefinitionSpec:
    """The task definition for `flow` in `scope`, running `image` (a code image by digest).

    GPU machines (`capacity` given, chosen by `flowship.ecs.placement.place`) run
    on EC2 with a GPU resource requirement; CPU machines run on Fargate.
    """
    aws = config.aws
    family = family_name(config.project, flow, scope)
    if machine.is_gpu != (capacity is not None):
        raise InputError(f"{flow}: a GPU machine needs a GPU capacity and a CPU machine none.")
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "essential": True,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": aws.log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": family[:200],
            },
        },
    }
    environment = {"PREFECT_API_URL": config.env.prefect_api_url} if config.env.prefect_api_url else {}
    if environment:
        container["environment"] = [{"name": k, "value": v} for k, v in sorted(environment.items())]
    # The API key is only ever a reference: ECS reads the secret at task start
    # with the execution role, so the key never appears in the definition.
    if aws.prefect_api_key_secret_arn:
        container["secrets"] = [{"name": "PREFECT_API_KEY", "valueFrom": aws.prefect_api_key_secret_arn}]
    request: dict[str, Any] = {
        "family": family,
        "cpu": str(machine.cpu_value),
        "memory": str(machine.memory_value),
        "containerDefinitions": [container],
    }
    if aws.execution_role_arn:
        request["executionRoleArn"] = aws.execution_role_arn
    if aws.task_role_arn:
        request["taskRoleArn"] = aws.task_role_arn
    if capacity is not None:
        request["requiresCompatibilities"] = ["EC2"]
        # awsvpc when the team gave subnets (each task its own ENI and security
        # groups); otherwise bridge, which needs no network configuration.
        request["networkMode"] = "awsvpc" if aws.subnets else "bridge"
        # On EC2 the scheduler places by container reservations.
        container["cpu"] = machine.cpu_value
        container["memory"] = machine.memory_value
        container["resourceRequirements"] = [{"type": "GPU", "value": str(machine.gpu_count or 1)}]
    else:
        request["requiresCompatibilities"] = ["FARGATE"]
        request["networkMode"] = "awsvpc"
        if machine.storage is not None:
            request["ephemeralStorage"] = {"sizeInGiB": machine.storage}
        platform = config.images[machine.family].platform if machine.family in config.images else "linux/amd64"
        request["runtimePlatform"] = {
            "operatingSystemFamily": "LINUX",
            "cpuArchitecture": "ARM64" if platform.endswith("arm64") else "X86_64",
        }
    tags = (
        ("flowship", "true"),
        ("flowship:flow", tag_value(flow)),
        ("flowship:scope", "main" if scope.is_main else "preview"),
        ("flowship:branch", tag_value(scope.slug)),
        ("flowship:sha", sha[:12]),
    )
    return TaskDefinitionSpec(family=family, request=request, tags=tags, capacity=capacity)


def _normal(value: Any) -> Any:
    """Empty values dropped and name-keyed lists sorted, as ECS treats them."""
    if isinstance(value, Mapping):
        out = {k: _normal(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {}, "")}
    if isinstance(value, list | tuple):
        items = [_normal(v) for v in value]
        if items and all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: i["name"])
        return items
    return value


def _container(definition: Mapping[str, Any]) -> dict[str, Any]:
    for container in definition.get("containerDefinitions") or []:
        if container.get("name") == CONTAINER:
            return dict(container)
    return {}


def differences(desired: Mapping[str, Any], current: Mapping[str, Any] | None) -> list[str]:
    """The keys on which `current` (a described task definition) differs from `desired`."""
    if not current:
        return ["(no active revision)"]
    changed = [k for k in TOP_KEYS if _normal(desired.get(k)) != _normal(current.get(k))]
    if len(current.get("containerDefinitions") or []) != len(desired["containerDefinitions"]):
        changed.append("containerDefinitions")
    want, have = _container(desired), _container(current)
    # ECS reports a container without a CPU reservation as `cpu: 0`.
    for container in (want, have):
        if container.get("cpu") == 0:
            container.pop("cpu")
    changed += [f"container.{k}" for k in CONTAINER_KEYS if _normal(want.get(k)) != _normal(have.get(k))]
    return changed

"""`flowship bootstrap` for the ECS target: the stack, then the work pool on what the stack made."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flowship import aws
from flowship.config import Config
from flowship.ecs import stack
from flowship.ecs.bootstrap import Step, ecs_pool
from flowship.ecs.target import Network


@dataclass(frozen=True)
class StackResult:
    steps: list[Step]
    config: Config  # as the stack's outputs say


def deploy_stack(
    config: Config, name: str, overrides: Mapping[str, str], *, confirm: Callable[[list[str]], bool]
) -> StackResult | None:
    """None when the change set was not applied (declined)."""
    template = stack.render(config)
    values = stack.parameters(config, template, overrides, aws.client(config, "ec2"))
    deployed = stack.deploy(aws.client(config, "cloudformation"), name, template, values, confirm=confirm)
    if deployed.outcome == "declined":
        return None
    status = "exists" if deployed.outcome == "unchanged" else deployed.outcome
    detail = "no changes" if deployed.outcome == "unchanged" else f"{len(deployed.outputs)} outputs"
    ours = stack.outputs_config(config, deployed.outputs)
    network = Network(values.get("VpcId"), ours.aws.subnets, ours.aws.security_groups, ours.aws.assign_public_ip)
    steps = [Step(f"CloudFormation stack {name}", status, detail), ecs_pool(ours, network.job_variables())]
    return StackResult(steps, ours)

"""flowship's AWS stack: the CloudFormation template, its parameters, and deploying it.

The template (`templates/stack.yaml.j2`) is rendered with jinja2, one block of
launch template, Auto Scaling group and capacity provider per
`[[tool.flowship.aws.gpu-capacity]]`, because CloudFormation has no loop over
a list of objects; every other decision a team makes is a CloudFormation
parameter, so the same rendering serves every account. `deploy` goes through
a change set (shown before it runs, deleted when it holds no change) and
waiters; `outputs_config` turns the stack's outputs into `[tool.flowship.aws]`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from flowship import aws, console, git
from flowship.config import AwsConfig, Config
from flowship.ecs.taskdef import family_name
from flowship.errors import FlowshipError, InputError
from flowship.scope import Scope

# What the worker's image runs: the versions flowship's pool template is built and tested against.
WORKER_PREFECT_VERSION = "3.9.1"
WORKER_PREFECT_AWS_VERSION = "0.7.12"
DEFAULT_MAX_INSTANCES = 2
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# Polling between progress lines: CloudFormation takes minutes, a line every ~30 s is enough.
_DELAY_S = 5
_ROUNDS = 6

Outcome = Literal["created", "updated", "unchanged", "declined"]


@dataclass(frozen=True)
class Capacity:
    """One GPU capacity's block in the template."""

    id: str  # the CloudFormation logical-id stem, e.g. GpuG5Xlarge
    name: str  # the ECS capacity provider's name
    instance_type: str
    disk: int
    max_size: int = DEFAULT_MAX_INSTANCES


@dataclass(frozen=True)
class Deployed:
    outcome: Outcome
    outputs: dict[str, str]


def logical_id(name: str) -> str:
    stem = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    return stem if stem[:1].isalpha() else f"Gpu{stem}"


def capacities(config: Config) -> list[Capacity]:
    blocks: list[Capacity] = []
    for c in config.aws.gpu_capacity:
        block = Capacity(logical_id(c.name), c.name, c.instance_type, c.disk)
        clash = [b.name for b in blocks if b.id == block.id]
        if clash:
            raise InputError(f"the GPU capacities {clash[0]!r} and {c.name!r} differ only in punctuation; rename one.")
        blocks.append(block)
    return blocks


def family_prefix(config: Config) -> str:
    """What every task definition family of this project starts with (ecs.taskdef.family_name)."""
    probe = family_name(config.project, "f", Scope.main())
    return probe.removesuffix("-f--main")


def render(config: Config) -> str:
    """The stack's template for this configuration (YAML, CloudFormation's short-form tags)."""
    import jinja2

    from flowship.ecs.bootstrap import LIFECYCLE_POLICY

    source = resources.files("flowship.ecs").joinpath("templates/stack.yaml.j2").read_text()
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(source)
    return template.render(
        cluster=config.aws.cluster,
        repository=config.ecr_repository or "flowship",
        log_group=config.aws.log_group,
        work_pool=config.ecs_pool,
        family_prefix=family_prefix(config),
        default_branch=config.default_branch,
        prefect_version=WORKER_PREFECT_VERSION,
        prefect_aws_version=WORKER_PREFECT_AWS_VERSION,
        # One definition of the policy (bootstrap.LIFECYCLE_POLICY), as the JSON text ECR takes.
        lifecycle_policy=json.dumps(LIFECYCLE_POLICY, separators=(",", ":")),
        capacities=capacities(config),
    )


def parameter_names(template: str) -> list[str]:
    block = template.split("\nParameters:\n", 1)[1].split("\n\nConditions:", 1)[0]
    return re.findall(r"^  ([A-Za-z0-9]+):$", block, flags=re.M)


def parameters(config: Config, template: str, overrides: Mapping[str, str], ec2: Any) -> dict[str, str]:
    """The parameter values from the configuration and the environment, then `--parameter` overrides."""
    known = parameter_names(template)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise InputError(f"{unknown[0]} is not a parameter of the stack; it has {', '.join(known)}.")
    values: dict[str, str] = {"AssignPublicIp": "ENABLED" if config.aws.assign_public_ip else "DISABLED"}
    if config.aws.prefect_api_key_secret_arn:
        values["PrefectApiKeySecretArn"] = config.aws.prefect_api_key_secret_arn
    if config.env.prefect_api_url:
        values["PrefectApiUrl"] = config.env.prefect_api_url
    repository = _github_repository(config)
    if repository:
        values["GitHubRepository"] = repository
    values |= dict(overrides)
    if "SubnetIds" not in values:
        values["SubnetIds"] = ",".join(config.aws.subnets) or ",".join(_default_subnets(ec2))
    if "VpcId" not in values and values["SubnetIds"]:
        values["VpcId"] = _vpc_of(ec2, values["SubnetIds"].split(","))
    for name, how in (
        ("PrefectApiUrl", "set PREFECT_API_URL (the worker's Prefect API)"),
        ("GitHubRepository", "set GITHUB_REPOSITORY or pass --parameter GitHubRepository=owner/name"),
        ("SubnetIds", "set [tool.flowship.aws] subnets (there is no default VPC)"),
    ):
        if not values.get(name):
            raise InputError(f"the stack needs {name}: {how}.")
    return values


def _github_repository(config: Config) -> str | None:
    for candidate in (config.env.github.get("GITHUB_REPOSITORY", ""), config.project):
        if _OWNER_NAME.match(candidate or ""):
            return candidate
    url = git.origin_url(config.root) or ""
    match = re.search(r"[:/]([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$", url)
    return match.group(1) if match else None


def _default_subnets(ec2: Any) -> list[str]:
    vpcs = _call("ec2:DescribeVpcs", ec2.describe_vpcs, Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        return []
    found = _call("ec2:DescribeSubnets", ec2.describe_subnets,
                  Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
    return sorted(s["SubnetId"] for s in found)


def _vpc_of(ec2: Any, subnets: list[str]) -> str:
    found = _call("ec2:DescribeSubnets", ec2.describe_subnets, SubnetIds=subnets)["Subnets"]
    vpcs = sorted({s["VpcId"] for s in found})
    if len(vpcs) != 1:
        raise InputError(f"the stack's subnets must be in one VPC; {', '.join(subnets)} are in {', '.join(vpcs) or 'none'}.")
    return vpcs[0]


def _call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise _translate(exc, action) from None


def _translate(exc: Exception, action: str) -> FlowshipError:
    if aws.error_code(exc) in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
        return FlowshipError(
            f"AWS denied {action}: the principal running bootstrap needs {action} "
            "(docs/ecs.md lists the bootstrap principal's permissions)."
        )
    return aws.translate(exc, action)


def describe(cfn: Any, stack: str) -> dict[str, Any] | None:
    try:
        found = cfn.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:
        if aws.error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise _translate(exc, "cloudformation:DescribeStacks") from None
    return found[0] if found else None


def deploy(
    cfn: Any, stack: str, template: str, values: Mapping[str, str], *,
    confirm: Callable[[list[str]], bool],
) -> Deployed:
    """Create or update `stack` through a change set; `confirm` sees its changes before it runs."""
    from botocore.exceptions import WaiterError

    current = describe(cfn, stack)
    status = (current or {}).get("StackStatus", "")
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        raise FlowshipError(
            f"the stack {stack} is {status} after a failed first deploy; delete it "
            f"(`aws cloudformation delete-stack --stack-name {stack}`) and run bootstrap again."
        )
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise FlowshipError(f"the stack {stack} is {status}; wait for it to finish and run bootstrap again.")
    kind = "UPDATE" if current and status != "REVIEW_IN_PROGRESS" else "CREATE"
    created = _call(
        "cloudformation:CreateChangeSet", cfn.create_change_set,
        StackName=stack, ChangeSetName=f"flowship-{time.strftime('%Y%m%d-%H%M%S')}", ChangeSetType=kind,
        TemplateBody=template, Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(values.items())],
        Tags=[{"Key": "flowship", "Value": "true"}],
    )
    change_set = created["Id"]
    try:
        cfn.get_waiter("change_set_create_complete").wait(
            ChangeSetName=change_set, StackName=stack, WaiterConfig={"Delay": _DELAY_S, "MaxAttempts": 120})
    except WaiterError:
        answer = _call("cloudformation:DescribeChangeSet", cfn.describe_change_set, ChangeSetName=change_set, StackName=stack)
        reason = answer.get("StatusReason") or answer.get("Status", "")
        if any(text in reason for text in NO_CHANGES):
            _call("cloudformation:DeleteChangeSet", cfn.delete_change_set, ChangeSetName=change_set, StackName=stack)
            return Deployed("unchanged", outputs(cfn, stack))
        raise FlowshipError(f"CloudFormation could not make a change set for {stack}: {reason}")
    lines = change_lines(cfn, stack, change_set)
    if not confirm(lines):
        _call("cloudformation:DeleteChangeSet", cfn.delete_change_set, ChangeSetName=change_set, StackName=stack)
        return Deployed("declined", {})
    started = time.time() - 5
    _call("cloudformation:ExecuteChangeSet", cfn.execute_change_set, ChangeSetName=change_set, StackName=stack)
    _wait(cfn, stack, "stack_create_complete" if kind == "CREATE" else "stack_update_complete", started)
    return Deployed("created" if kind == "CREATE" else "updated", outputs(cfn, stack))


def change_lines(cfn: Any, stack: str, change_set: str) -> list[str]:
    """`Add  AWS::ECS::Cluster  Cluster` for each change (describe_change_set pages by NextToken)."""
    lines: list[str] = []
    token: str | None = None
    while True:
        page = _call("cloudformation:DescribeChangeSet", cfn.describe_change_set, ChangeSetName=change_set,
                     StackName=stack, **({"NextToken": token} if token else {}))
        for change in page.get("Changes", []):
            rc = change.get("ResourceChange", {})
            replace = " (replaced)" if rc.get("Replacement") == "True" else ""
            lines.append(f"{rc.get('Action', '?'):<7} {rc.get('ResourceType', '?'):<40} {rc.get('LogicalResourceId', '?')}{replace}")
        token = page.get("NextToken")
        if not token:
            return lines


def _wait(cfn: Any, stack: str, waiter_name: str, since: float) -> None:
    from botocore.exceptions import WaiterError

    waiter = cfn.get_waiter(waiter_name)
    seen: set[str] = set()
    while True:
        try:
            waiter.wait(StackName=stack, WaiterConfig={"Delay": _DELAY_S, "MaxAttempts": _ROUNDS})
            return
        except WaiterError as exc:
            new = [e for e in events(cfn, stack, since) if e["EventId"] not in seen]
            seen |= {e["EventId"] for e in new}
            if "Max attempts exceeded" not in str(exc):
                failed = [e for e in new + events(cfn, stack, since) if str(e.get("ResourceStatus", "")).endswith("FAILED")]
                for event in _unique(failed):
                    console.error(_event_line(event))
                raise FlowshipError(f"the stack {stack} did not deploy; the failed resources are above.") from None
            for event in new:
                console.info(_event_line(event))


def events(cfn: Any, stack: str, since: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack):
        for event in page.get("StackEvents", []):
            stamp = event.get("Timestamp")
            if stamp is None or stamp.timestamp() >= since:
                found.append(event)
    return sorted(found, key=lambda e: e.get("Timestamp") or 0)


def _unique(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({e["EventId"]: e for e in items}.values())


def _event_line(event: Mapping[str, Any]) -> str:
    reason = f": {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
    return f"{event.get('ResourceStatus', '?'):<20} {event.get('ResourceType', '?')} {event.get('LogicalResourceId', '?')}{reason}"


def outputs(cfn: Any, stack: str) -> dict[str, str]:
    found = describe(cfn, stack)
    if found is None:
        raise FlowshipError(f"there is no stack {stack}: run `flowship bootstrap --target ecs` first.")
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}


def outputs_config(config: Config, out: Mapping[str, str]) -> Config:
    """`config` as the stack's outputs say: what deploy and the work pool need."""
    subnets = tuple(s for s in out.get("Subnets", "").split(",") if s)
    groups = tuple(s for s in out.get("SecurityGroups", "").split(",") if s)
    aws_config: AwsConfig = dataclasses.replace(
        config.aws,
        region=out.get("Region", config.aws.region),
        cluster=out.get("Cluster", config.aws.cluster),
        execution_role_arn=out.get("ExecutionRoleArn"),
        task_role_arn=out.get("TaskRoleArn"),
        log_group=out.get("LogGroup", config.aws.log_group),
        subnets=subnets or config.aws.subnets,
        security_groups=groups or config.aws.security_groups,
        assign_public_ip=out.get("AssignPublicIp") == "ENABLED",
        prefect_api_key_secret_arn=out.get("PrefectApiKeySecretArn") or None,
    )
    return dataclasses.replace(
        config, aws=aws_config, ecr_repository=out.get("EcrRepository", config.ecr_repository),
        ecs_pool=out.get("WorkPool", config.ecs_pool),
    )

"""`flowship doctor`: is the deployed stack able to run a flow? One check, one line.

Each check reads what is live (the stack's outputs, then ECS, Auto Scaling,
IAM, Secrets Manager, ECR and Prefect), never the template, so it also finds
what was changed by hand after bootstrap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from flowship import aws
from flowship.config import Config
from flowship.ecs import stack
from flowship.ecs.bootstrap import ECS_TASKS_PRINCIPAL
from flowship.ecs.pool import check_pool, read_pool
from flowship.errors import FlowshipError

OIDC_HOST = "token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


def diagnose(config: Config, name: str, *, heartbeat_s: int = 120) -> list[Check]:
    cfn = aws.client(config, "cloudformation")
    found = stack.describe(cfn, name)
    if found is None:
        return [Check(f"stack {name}", False, "does not exist: run `flowship bootstrap`")]
    status = found.get("StackStatus", "")
    checks = [Check(f"stack {name}", status.endswith("_COMPLETE") and "ROLLBACK" not in status, status)]
    out = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    ours = stack.outputs_config(config, out)
    for check in (
        lambda: pool(ours, heartbeat_s),
        lambda: capacity(ours),
        lambda: roles(ours, out),
        lambda: secret(ours),
        lambda: repository(ours),
    ):
        checks += _guard(check)
    return checks


def _guard(check: Callable[[], list[Check]]) -> list[Check]:
    try:
        return check()
    except FlowshipError as exc:  # a check that cannot ask (AccessDenied, an outage) says so and the rest go on
        return [Check("check", False, str(exc))]


def pool(config: Config, heartbeat_s: int) -> list[Check]:
    from flowship.deploy.client import open_client

    name = config.ecs_pool
    with open_client(config) as client:
        found = read_pool(client, name)
        problems = check_pool(found, name).problems
        if problems:
            return [Check(f"work pool {name}", False, "; ".join(problems))]
        workers = client.read_workers_for_work_pool(work_pool_name=name)
    checks = [Check(f"work pool {name}", True, "type ecs with flowship's variables")]
    since = datetime.now(timezone.utc) - timedelta(seconds=heartbeat_s)
    beats = sorted((w.last_heartbeat_time for w in workers if w.last_heartbeat_time), reverse=True)
    if beats and beats[0] >= since:
        age = int((datetime.now(timezone.utc) - beats[0]).total_seconds())
        checks.append(Check("worker", True, f"{len(workers)} worker(s); the last polled {age} s ago"))
    else:
        last = f"the last poll was at {beats[0]:%Y-%m-%d %H:%M:%S} UTC" if beats else "no worker ever polled it"
        checks.append(Check("worker", False, (
            f"no worker polled {name} in the last {heartbeat_s} s ({last}): look at the service "
            f"prefect-worker in the cluster {config.aws.cluster} and its logs in {config.aws.log_group}"
        )))
    return checks


def capacity(config: Config) -> list[Check]:
    ecs = aws.client(config, "ecs")
    wanted = [c.name for c in config.aws.gpu_capacity]
    if not wanted:
        return [Check("GPU capacity", True, "none configured (CPU flows only)")]
    clusters = _call("ecs:DescribeClusters", ecs.describe_clusters, clusters=[config.aws.cluster])["clusters"]
    attached = set((clusters[0].get("capacityProviders") or []) if clusters else [])
    providers = {
        p["name"]: p for p in _call("ecs:DescribeCapacityProviders", ecs.describe_capacity_providers,
                                    capacityProviders=wanted)["capacityProviders"]
    }
    asg = aws.client(config, "autoscaling")
    checks = []
    for name in wanted:
        provider = providers.get(name)
        what = f"capacity provider {name}"
        if provider is None or provider.get("status", "ACTIVE") != "ACTIVE":
            checks.append(Check(what, False, "does not exist (the stack creates it; was it deleted?)"))
            continue
        if name not in attached:
            checks.append(Check(what, False, f"is not attached to the cluster {config.aws.cluster}"))
            continue
        group = provider.get("autoScalingGroupProvider") or {}
        if (group.get("managedScaling") or {}).get("status") != "ENABLED":
            checks.append(Check(what, False, "managed scaling is off: ECS cannot start GPU instances for a run"))
            continue
        checks.append(_scales(asg, what, group.get("autoScalingGroupArn", "")))
    return checks


def _scales(asg: Any, what: str, arn: str) -> Check:
    group_name = unquote(arn.rsplit("autoScalingGroupName/", 1)[-1])
    groups = _call("autoscaling:DescribeAutoScalingGroups", asg.describe_auto_scaling_groups,
                   AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        return Check(what, False, f"its Auto Scaling group {group_name} does not exist")
    group = groups[0]
    if int(group.get("MaxSize", 0)) < 1:
        return Check(what, False, f"its Auto Scaling group {group_name} has MaxSize 0: no GPU instance can start")
    return Check(what, True, f"attached, scales {group.get('MinSize', 0)}-{group['MaxSize']} ({group.get('DesiredCapacity', 0)} now)")


def roles(config: Config, out: dict[str, str]) -> list[Check]:
    iam = aws.client(config, "iam")
    repository = out.get("GitHubRepository")
    wanted = [
        ("execution role", out.get("ExecutionRoleArn"), [ECS_TASKS_PRINCIPAL]),
        ("task role", out.get("TaskRoleArn"), [ECS_TASKS_PRINCIPAL]),
        ("worker role", out.get("WorkerRoleArn"), [ECS_TASKS_PRINCIPAL]),
        ("deploy role", out.get("DeployRoleArn"), [OIDC_HOST, f"repo:{repository}:"] if repository else [OIDC_HOST]),
        ("preview role", out.get("PreviewRoleArn"), [OIDC_HOST, f"repo:{repository}:pull_request"] if repository else [OIDC_HOST]),
    ]
    checks = []
    for what, arn, must in wanted:
        if not arn:
            checks.append(Check(what, False, "the stack has no output for it"))
            continue
        trust = _trust(iam, arn)
        if trust is None:
            checks.append(Check(what, False, f"{arn} does not exist"))
            continue
        lacking = [m for m in must if m not in trust]
        checks.append(Check(what, not lacking, f"trusts {', '.join(must)}" if not lacking else f"does not trust {lacking[0]}"))
    return checks


def _trust(iam: Any, arn: str) -> str | None:
    try:
        document = iam.get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"].get("AssumeRolePolicyDocument")
    except Exception as exc:
        if aws.error_code(exc) == "NoSuchEntity":
            return None
        raise aws.translate(exc, "iam:GetRole") from None
    return unquote(document) if isinstance(document, str) else json.dumps(document)


def secret(config: Config) -> list[Check]:
    arn = config.aws.prefect_api_key_secret_arn
    if not arn:
        return [Check("Prefect API key secret", False, "the stack has no secret output")]
    sm = aws.client(config, "secretsmanager")
    try:
        found = sm.describe_secret(SecretId=arn)
    except Exception as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise aws.translate(exc, "secretsmanager:DescribeSecret") from None
        return [Check("Prefect API key secret", False, f"{arn} does not exist")]
    stages = [s for stages in (found.get("VersionIdsToStages") or {}).values() for s in stages]
    if "AWSCURRENT" not in stages:
        return [Check("Prefect API key secret", False, (
            f"{arn} has no value yet: `aws secretsmanager put-secret-value --secret-id {arn} --secret-string <key>`"
        ))]
    return [Check("Prefect API key secret", True, arn)]


def repository(config: Config) -> list[Check]:
    name = config.ecr_repository or "flowship"
    ecr = aws.client(config, "ecr")
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except Exception as exc:
        if aws.error_code(exc) != "RepositoryNotFoundException":
            raise aws.translate(exc, "ecr:DescribeRepositories") from None
        return [Check(f"ECR repository {name}", False, "does not exist")]
    _call("ecr:GetAuthorizationToken", ecr.get_authorization_token)
    mutable = repo.get("imageTagMutability") != "IMMUTABLE"
    return [Check(f"ECR repository {name}", not mutable,
                  "tags are mutable: a code image could change under a deployment" if mutable
                  else f"{repo['repositoryUri']}, immutable tags, login works")]


def _call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise aws.translate(exc, action) from None

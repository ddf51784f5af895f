"""`flowship bootstrap`: create what a team needs and can create by API, check the rest.

Created (idempotently): the ECR repository (immutable tags, a lifecycle
policy), the CloudWatch log group, the ECS cluster (and attaching configured
GPU capacity providers to it), and the Prefect ECS work pool. Checked and
explained, never created: the VPC and subnets, the GPU capacity providers
with their Auto Scaling groups, the IAM roles and the Prefect API key secret:
they carry decisions (network layout, instance types, trust, a secret value)
a deploy tool should not make for a team.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flowship import aws, console
from flowship.config import Config
from flowship.ecs import Network, resolve_network
from flowship.errors import FlowshipError
from flowship.ecs.pool import DEFAULTED_VARIABLES, ECS_POOL_TYPE, REQUIRED_VARIABLES, base_job_template, check_pool, read_pool

Status = Literal["created", "updated", "exists", "missing", "skipped"]

# Code images are `<family>-<sha>` and deps images `<family>-deps-<hash>`
# (flowship.images); main's deployments run them by digest for as long as a
# workflow is unchanged, so no age or count rule may touch them. Only
# untagged images (superseded manifests) and images pushed for previews
# under the `preview-` prefix expire.
PREVIEW_TAG_PREFIX = "preview-"
PREVIEW_DAYS = 14
UNTAGGED_DAYS = 1
LOG_RETENTION_DAYS = 30
LIFECYCLE_POLICY: dict[str, Any] = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "flowship: expire preview images two weeks after push",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": [PREVIEW_TAG_PREFIX],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": PREVIEW_DAYS,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "flowship: expire untagged images after a day",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_DAYS,
            },
            "action": {"type": "expire"},
        },
    ]
}
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


@dataclass(frozen=True)
class Step:
    what: str
    status: Status
    detail: str = ""


def _call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise aws.translate(exc, action) from None


def ecr_repository(config: Config, ecr: Any) -> list[Step]:
    name = config.ecr_repository
    if not name:
        where = f"images go to {config.registry}" if config.registry else "no image registry is configured"
        return [Step("ECR repository", "skipped", f"[tool.flowship] ecr-repository is not set; {where}")]
    steps = []
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except Exception as exc:
        if aws.error_code(exc) != "RepositoryNotFoundException":
            raise aws.translate(exc, "ecr:DescribeRepositories") from None
        _call(
            "ecr:CreateRepository", ecr.create_repository, repositoryName=name, imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True}, tags=[{"Key": "flowship", "Value": "true"}],
        )
        steps.append(Step(f"ECR repository {name}", "created", "immutable tags, scan on push"))
    else:
        if repo.get("imageTagMutability") != "IMMUTABLE":
            _call("ecr:PutImageTagMutability", ecr.put_image_tag_mutability, repositoryName=name,
                  imageTagMutability="IMMUTABLE")
            steps.append(Step(f"ECR repository {name}", "updated", "tags made immutable"))
        else:
            steps.append(Step(f"ECR repository {name}", "exists", "immutable tags"))
    try:
        current = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
    except Exception as exc:
        if aws.error_code(exc) != "LifecyclePolicyNotFoundException":
            raise aws.translate(exc, "ecr:GetLifecyclePolicy") from None
        current = None
    what = f"ECR lifecycle policy on {name}"
    detail = f"{PREVIEW_TAG_PREFIX}* after {PREVIEW_DAYS} days, untagged after {UNTAGGED_DAYS} day"
    if current == LIFECYCLE_POLICY:
        steps.append(Step(what, "exists", detail))
    else:
        _call("ecr:PutLifecyclePolicy", ecr.put_lifecycle_policy, repositoryName=name,
              lifecyclePolicyText=json.dumps(LIFECYCLE_POLICY))
        steps.append(Step(what, "created" if current is None else "updated", detail))
    return steps


def log_group(config: Config, logs: Any) -> Step:
    name = config.aws.log_group
    groups = _call("logs:DescribeLogGroups", logs.describe_log_groups, logGroupNamePrefix=name)["logGroups"]
    if any(g["logGroupName"] == name for g in groups):
        return Step(f"CloudWatch log group {name}", "exists")
    _call("logs:CreateLogGroup", logs.create_log_group, logGroupName=name, tags={"flowship": "true"})
    _call("logs:PutRetentionPolicy", logs.put_retention_policy, logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
    return Step(f"CloudWatch log group {name}", "created", f"{LOG_RETENTION_DAYS}-day retention")


def cluster(config: Config, ecs: Any) -> list[Step]:
    name = config.aws.cluster
    found = _call("ecs:DescribeClusters", ecs.describe_clusters, clusters=[name])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    if active:
        steps = [Step(f"ECS cluster {name}", "exists")]
        attached = list(active[0].get("capacityProviders") or [])
        strategy = list(active[0].get("defaultCapacityProviderStrategy") or [])
    else:
        _call("ecs:CreateCluster", ecs.create_cluster, clusterName=name, tags=[{"key": "flowship", "value": "true"}])
        steps = [Step(f"ECS cluster {name}", "created")]
        attached, strategy = [], []
    return steps + capacity_providers(config, ecs, attached, strategy)


def capacity_providers(config: Config, ecs: Any, attached: list[str], strategy: list[dict[str, Any]]) -> list[Step]:
    capacities = config.aws.gpu_capacity
    if not capacities:
        return [Step("GPU capacity", "skipped", "no [[tool.flowship.aws.gpu-capacity]]; GPU workflows cannot deploy")]
    answer = _call("ecs:DescribeCapacityProviders", ecs.describe_capacity_providers,
                   capacityProviders=[c.name for c in capacities])
    existing = {p["name"] for p in answer.get("capacityProviders", []) if p.get("status", "ACTIVE") == "ACTIVE"}
    steps, attach = [], []
    for capacity in capacities:
        what = f"GPU capacity provider {capacity.name}"
        if capacity.name not in existing:
            steps.append(Step(what, "missing", (
                f"create an Auto Scaling group of {capacity.instance_type} instances from the ECS GPU-optimized "
                f"AMI (ECS_CLUSTER={config.aws.cluster} in its user data), then `aws ecs create-capacity-provider "
                f"--name {capacity.name} --auto-scaling-group-provider autoScalingGroupArn=<ASG ARN>,"
                "managedScaling={status=ENABLED},managedTerminationProtection=DISABLED`; rerun bootstrap to attach it"
            )))
        elif capacity.name in attached:
            steps.append(Step(what, "exists", f"{capacity.instance_type}, attached to {config.aws.cluster}"))
        else:
            attach.append(capacity.name)
    if attach:
        # PutClusterCapacityProviders replaces the whole list: keep what is there.
        _call("ecs:PutClusterCapacityProviders", ecs.put_cluster_capacity_providers, cluster=config.aws.cluster,
              capacityProviders=attached + attach, defaultCapacityProviderStrategy=strategy)
        steps += [Step(f"GPU capacity provider {n}", "updated", f"attached to {config.aws.cluster}") for n in attach]
    return steps


def role(iam: Any, what: str, arn: str | None, key: str, purpose: str) -> Step:
    if not arn:
        return Step(what, "missing", (
            f"set [tool.flowship.aws] {key} to a role that trusts {ECS_TASKS_PRINCIPAL} and {purpose} (docs/ecs.md)"
        ))
    name = arn.rsplit("/", 1)[-1]
    try:
        found = iam.get_role(RoleName=name)["Role"]
    except Exception as exc:
        if aws.error_code(exc) == "NoSuchEntity":
            return Step(what, "missing", f"the role {arn} does not exist; create it: it must trust {ECS_TASKS_PRINCIPAL} and {purpose}")
        raise aws.translate(exc, "iam:GetRole") from None
    trust = found.get("AssumeRolePolicyDocument")
    trust_text = trust if isinstance(trust, str) else json.dumps(trust)
    if ECS_TASKS_PRINCIPAL not in trust_text:
        return Step(what, "missing", f"{arn} does not trust {ECS_TASKS_PRINCIPAL}: add it to the role's trust policy")
    return Step(what, "exists", arn)


def network(config: Config, ec2: Any) -> tuple[list[Step], Network]:
    if not config.aws.subnets:
        vpcs = _call("ec2:DescribeVpcs", ec2.describe_vpcs, Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if vpcs:
            return [Step("network", "exists", f"no subnets configured: Fargate tasks use the default VPC {vpcs[0]['VpcId']}")], Network()
        return [Step("network", "missing", "no [tool.flowship.aws] subnets and no default VPC: list the subnets tasks run in")], Network()
    try:
        net = resolve_network(config, ec2)
    except FlowshipError as exc:
        return [Step("subnets", "missing", f"{exc} ({', '.join(config.aws.subnets)})")], Network()
    steps = [Step("subnets", "exists", f"{', '.join(net.subnets)} in {net.vpc_id}")]
    if config.aws.security_groups:
        try:
            ec2.describe_security_groups(GroupIds=list(config.aws.security_groups))
            steps.append(Step("security groups", "exists", ", ".join(config.aws.security_groups)))
        except Exception as exc:
            if not aws.error_code(exc).startswith("InvalidGroup"):
                raise aws.translate(exc, "ec2:DescribeSecurityGroups") from None
            steps.append(Step("security groups", "missing", f"one of {', '.join(config.aws.security_groups)} does not exist"))
    return steps, net


def secret(config: Config, sm: Any) -> Step:
    arn = config.aws.prefect_api_key_secret_arn
    if not arn:
        cloud = "api.prefect.cloud" in (config.env.prefect_api_url or "")
        if cloud:
            return Step("Prefect API key secret", "missing", (
                "Prefect Cloud needs an API key in the tasks: store it in Secrets Manager "
                "(`aws secretsmanager create-secret --name flowship/prefect-api-key --secret-string ...`) "
                "and set [tool.flowship.aws] prefect-api-key-secret-arn"
            ))
        return Step("Prefect API key secret", "skipped", "none configured (a self-hosted Prefect API without a key)")
    try:
        sm.describe_secret(SecretId=arn)
    except Exception as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise aws.translate(exc, "secretsmanager:DescribeSecret") from None
        return Step("Prefect API key secret", "missing", f"{arn} does not exist: create it with the Prefect API key as its value")
    return Step("Prefect API key secret", "exists", arn)


def ecs_pool(config: Config, network_variables: dict[str, Any]) -> Step:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

    from flowship.deploy.client import open_client

    name = config.ecs_pool
    template = base_job_template(config, network_variables)
    what = f"Prefect work pool {name}"
    with open_client(config) as client:
        pool = read_pool(client, name)
        if pool is None:
            client.create_work_pool(WorkPoolCreate(name=name, type=ECS_POOL_TYPE, base_job_template=template))
            return Step(what, "created", "type ecs, GPU-capable base job template")
        if pool.type != ECS_POOL_TYPE:
            return Step(what, "missing", "; ".join(check_pool(pool, name).problems))
        merged = _merge_template(pool.base_job_template or {}, template)
        if merged == pool.base_job_template:
            return Step(what, "exists", "type ecs")
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=merged))
        return Step(what, "updated", "flowship's variables and defaults")


def _merge_template(current: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """`current` with flowship's variables added and its defaults set; a template
    lacking flowship's variables is replaced. Other edits (made in the UI) stay."""
    have = (current.get("variables") or {}).get("properties") or {}
    if any(v not in have for v in (*REQUIRED_VARIABLES, "resource_requirements")):
        return ours
    merged = json.loads(json.dumps(current))
    props = merged["variables"]["properties"]
    for name, spec in ours["variables"]["properties"].items():
        if name not in props:
            props[name] = spec
        elif "default" in spec and name in DEFAULTED_VARIABLES:
            props[name]["default"] = spec["default"]
    return merged


def bootstrap_ecs(config: Config) -> list[Step]:
    steps: list[Step] = []
    steps += ecr_repository(config, aws.client(config, "ecr"))
    steps.append(log_group(config, aws.client(config, "logs")))
    steps += cluster(config, aws.client(config, "ecs"))
    iam = aws.client(config, "iam")
    steps.append(role(iam, "execution role", config.aws.execution_role_arn, "execution-role-arn",
                      "has AmazonECSTaskExecutionRolePolicy and secretsmanager:GetSecretValue on the API key secret"))
    if config.aws.task_role_arn:
        steps.append(role(iam, "task role", config.aws.task_role_arn, "task-role-arn", "grants what flows need"))
    net_steps, net = network(config, aws.client(config, "ec2"))
    steps += net_steps
    steps.append(secret(config, aws.client(config, "secretsmanager")))
    steps.append(ecs_pool(config, net.job_variables()))
    return steps


def bootstrap_local(config: Config) -> list[Step]:
    from flowship.deploy.client import open_client
    from flowship.deploy.local import LocalTarget

    with open_client(config) as client:
        before = read_pool(client, config.local_pool)
        LocalTarget(config).ensure_pool(client)
    what = f"Prefect work pool {config.local_pool}"
    return [Step(what, "exists" if before is not None else "created", "type process")]


def report(steps: list[Step]) -> int:
    width = max(len(s.status) for s in steps)
    for step in steps:
        line = f"{step.status:<{width}}  {step.what}" + (f": {step.detail}" if step.detail else "")
        if step.status == "missing":
            console.error(line)
        else:
            console.info(line)
    missing = [s for s in steps if s.status == "missing"]
    changed = [s for s in steps if s.status in ("created", "updated")]
    if not changed:
        console.info("nothing to change: everything bootstrap can create already exists.")
    if missing:
        console.error(f"{len(missing)} piece(s) bootstrap cannot create are missing; see above for each fix.")
        return 1
    return 0

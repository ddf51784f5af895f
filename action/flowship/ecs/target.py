"""ECS through boto3: task definitions per workflow and scope, and the ECS target.

`TaskDefinitions` registers a family's revision only when what flowship
wants differs from the latest ACTIVE revision, so a rerun registers nothing,
and deregisters a family's revisions when a workflow or a preview goes.
`EcsTarget` is where deployments go on AWS: the prefect-aws `ecs` work pool,
with job variables that name the exact task definition to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowship import aws, console
from flowship.config import Config
from flowship.deploy.target import Infrastructure, Request
from flowship.ecs.placement import place
from flowship.ecs.pool import ensure_ecs_pool
from flowship.ecs.taskdef import TaskDefinitionSpec, build_spec, differences, family_name
from flowship.errors import FlowshipError, InputError
from flowship.images.render import CODE_DIR
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient


@dataclass(frozen=True)
class Registration:
    """The task definition a deployment runs: its ARN, and whether this run registered it."""

    family: str
    arn: str
    registered: bool
    changed: tuple[str, ...] = ()


class TaskDefinitions:
    """One ECS client's view of flowship's task definition families."""

    def __init__(self, client: Any):
        self.client = client

    @property
    def region(self) -> str:
        return self.client.meta.region_name

    def latest(self, family: str) -> dict[str, Any] | None:
        """The latest ACTIVE revision of `family`, or None if it has none."""
        try:
            described = self.client.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except Exception as exc:
            # ECS answers ClientException "Unable to describe task definition."
            # for a family that has no revision.
            if aws.error_code(exc) == "ClientException":
                return None
            raise aws.translate(exc, "ecs:DescribeTaskDefinition") from None
        return described if described.get("status") == "ACTIVE" else None

    def ensure(self, spec: TaskDefinitionSpec) -> Registration:
        """The revision to run `spec`: the latest one when it matches, else a new one."""
        current = self.latest(spec.family)
        changed = differences(spec.request, current)
        if current is not None and not changed:
            return Registration(spec.family, current["taskDefinitionArn"], registered=False)
        try:
            response = self.client.register_task_definition(**spec.request, tags=spec.tag_list())
        except Exception as exc:
            raise aws.translate(exc, "ecs:RegisterTaskDefinition") from None
        arn = response["taskDefinition"]["taskDefinitionArn"]
        console.info(f"registered {arn.rsplit('/', 1)[-1]} ({', '.join(changed)})")
        return Registration(spec.family, arn, registered=True, changed=tuple(changed))

    def active_revisions(self, family: str) -> list[str]:
        arns: list[str] = []
        try:
            pages = self.client.get_paginator("list_task_definitions").paginate(
                familyPrefix=family, status="ACTIVE"
            )
            for page in pages:
                # familyPrefix is a whole family name in ECS; filter anyway so a
                # family that merely starts the same is never touched.
                arns += [a for a in page["taskDefinitionArns"] if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        except Exception as exc:
            raise aws.translate(exc, "ecs:ListTaskDefinitions") from None
        return arns

    def deregister_family(self, family: str) -> list[str]:
        """Deregister every ACTIVE revision of `family`; the ARNs it deregistered."""
        arns = self.active_revisions(family)
        for arn in arns:
            try:
                self.client.deregister_task_definition(taskDefinition=arn)
            except Exception as exc:
                raise aws.translate(exc, "ecs:DeregisterTaskDefinition") from None
        if arns:
            console.info(f"deregistered {len(arns)} revision(s) of {family}")
        return arns


@dataclass(frozen=True)
class Network:
    """Where Fargate (and awsvpc GPU) tasks attach: the configured subnets' VPC."""

    vpc_id: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False

    def job_variables(self) -> dict[str, Any]:
        # prefect-aws only uses a custom network configuration together with
        # its VPC (it checks the subnets belong to it); without subnets the
        # worker falls back to the default VPC.
        if not self.subnets or not self.vpc_id:
            return {}
        configuration: dict[str, Any] = {
            "subnets": list(self.subnets),
            "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED",
        }
        if self.security_groups:
            configuration["securityGroups"] = list(self.security_groups)
        return {"vpc_id": self.vpc_id, "network_configuration": configuration}


def resolve_network(config: Config, ec2: Any | None = None) -> Network:
    """The VPC of the configured subnets (one ec2:DescribeSubnets call)."""
    subnets = config.aws.subnets
    if not subnets:
        return Network()
    ec2 = ec2 or aws.client(config, "ec2")
    try:
        found = ec2.describe_subnets(SubnetIds=list(subnets))["Subnets"]
    except Exception as exc:
        raise aws.translate(exc, "ec2:DescribeSubnets") from None
    vpcs = {s["VpcId"] for s in found}
    if len(vpcs) != 1:
        raise InputError(
            f"[tool.flowship.aws] subnets must all be in one VPC; they are in {', '.join(sorted(vpcs)) or 'none'}."
        )
    return Network(vpcs.pop(), subnets, config.aws.security_groups, config.aws.assign_public_ip)


def job_variables(config: Config, spec: TaskDefinitionSpec, arn: str, network: Network) -> dict[str, Any]:
    """The prefect-aws ECS worker's job variables that run exactly `arn`.

    Names are prefect-aws 0.7.12's `ECSVariables`. A GPU task goes to its
    capacity provider (the worker then drops the launch type, as RunTask
    takes one or the other); a CPU task is launched on Fargate.
    """
    variables: dict[str, Any] = {"task_definition_arn": arn, "cluster": config.aws.cluster}
    if spec.capacity is not None:
        variables["capacity_provider_strategy"] = [
            {"capacityProvider": spec.capacity.name, "weight": 1, "base": 0}
        ]
        if spec.request.get("networkMode") == "awsvpc":
            variables |= network.job_variables()
    else:
        variables["launch_type"] = "FARGATE"
        variables |= network.job_variables()
    if config.aws.prefect_api_key_secret_arn:
        # With this set the worker drops its own PREFECT_API_KEY from the
        # task's environment overrides: the key stays a secret reference.
        variables["prefect_api_key_secret_arn"] = config.aws.prefect_api_key_secret_arn
    return variables


def image_for(request_image: str | None, family: str, flow: str) -> str:
    if not request_image:
        raise FlowshipError(
            f"{flow} needs the {family!r} image but no image reference was given for it; "
            "run `flowship build --output images.json` and pass `--images images.json` to deploy."
        )
    return request_image


def check_settings(config: Config) -> None:
    """Settings every flowship task definition needs, checked before any AWS call."""
    if not config.aws.execution_role_arn:
        raise InputError(
            "[tool.flowship.aws] execution-role-arn is not set: ECS needs an execution role to pull the image "
            "from ECR, write CloudWatch logs and read the Prefect API key secret. Run `flowship bootstrap` "
            "for what to create."
        )


class EcsTarget:
    """Deployments on the prefect-aws `ecs` work pool, each running its own task definition.

    Implements `flowship.deploy.target.Target`. AWS clients are made on first
    use, so building a target (e.g. to check a pool) costs nothing.
    """

    name = "ecs"

    def __init__(self, config: Config, *, ecs: Any | None = None, ec2: Any | None = None):
        self.config = config
        self._ecs = ecs
        self._ec2 = ec2
        self._network: Network | None = None

    @property
    def pool(self) -> str:
        return self.config.ecs_pool

    @property
    def task_definitions(self) -> TaskDefinitions:
        if self._ecs is None:
            self._ecs = aws.client(self.config, "ecs")
        return TaskDefinitions(self._ecs)

    @property
    def network(self) -> Network:
        if self._network is None:
            self._network = resolve_network(self.config, self._ec2)
        return self._network

    def ensure_pool(self, client: SyncPrefectClient) -> None:
        check_settings(self.config)
        ensure_ecs_pool(self.config, client)

    def spec(self, request: Request) -> TaskDefinitionSpec:
        """The task definition `request` needs, placed on GPU capacity or Fargate."""
        workflow = request.workflow
        machine = workflow.machine
        capacity = place(machine, self.config.aws.gpu_capacity, workflow=workflow.name) if machine.is_gpu else None
        defs = self.task_definitions
        return build_spec(
            self.config, flow=workflow.name, machine=machine, scope=request.scope,
            image=image_for(request.image, machine.family, workflow.name), sha=request.head,
            region=defs.region, capacity=capacity,
        )

    def prepare(self, request: Request) -> Infrastructure:
        spec = self.spec(request)
        registration = self.task_definitions.ensure(spec)
        # The code image holds the commit's repository at CODE_DIR; the flow
        # run changes into it so `flows/x.py:fn` resolves there, nothing is pulled.
        pull_steps = [{"prefect.deployments.steps.set_working_directory": {"directory": CODE_DIR}}]
        return Infrastructure(
            job_variables=job_variables(self.config, spec, registration.arn, self.network), pull_steps=pull_steps
        )

    def cleanup(self, flow_name: str, scope: Scope) -> None:
        self.task_definitions.deregister_family(family_name(self.config.project, flow_name, scope))

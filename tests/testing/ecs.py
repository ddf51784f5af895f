"""An AWS account in moto and a repository configured for the ECS target."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3

from flowship.config import Config, load_config
from flowship.plan import Deletion, Plan, PlannedWorkflow
from flowship.scope import Scope, deployment_name
from flowship.workflow import AwsEcsMachine, Workflow
from testing.git import Repo

REGION = "us-east-1"
# The CUDA `ml` image cannot be built here (nothing can be pulled): the test
# repository replaces the family's template with one FROM the local Python image.
ML_TEMPLATE = """\
# Test stand-in for the CUDA family: same inputs, no GPU libraries.
FROM {{ base_image }}
ENV FLOWSHIP_FAMILY=ml
WORKDIR {{ deps_dir }}
"""
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
API_KEY = "pnu_flowship_test_secret_value_0123456789"
IMAGES = {
    "ml": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flowship@sha256:" + "a" * 64,
    "base": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flowship@sha256:" + "b" * 64,
}


@dataclass(frozen=True)
class Account:
    """What a team has made by hand before flowship: network, roles, the key secret, GPU capacity."""

    vpc: str
    subnet: str
    security_group: str
    execution_role: str
    task_role: str
    secret: str
    capacity: str  # the GPU capacity provider's name


def make_account(capacity: str = "gpu-g5-xlarge") -> Account:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"flowship-{uuid.uuid4().hex[:6]}", Description="tasks", VpcId=vpc)["GroupId"]
    iam = boto3.client("iam", region_name=REGION)
    roles = [
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        for name in ("flowship-execution", "flowship-task")
    ]
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="flowship/prefect-api-key", SecretString=API_KEY
    )["ARN"]
    boto3.client("ecs", region_name=REGION).create_capacity_provider(
        name=capacity,
        autoScalingGroupProvider={
            "autoScalingGroupArn": f"arn:aws:autoscaling:{REGION}:123456789012:autoScalingGroup:1:autoScalingGroupName/{capacity}",
            "managedScaling": {"status": "ENABLED"},
        },
    )
    return Account(vpc, subnet, sg, roles[0], roles[1], secret, capacity)


def pyproject(account: Account | None, *, project: str, pool: str, extra: str = "", subnets: bool = True) -> str:
    """`[tool.flowship]` for the ECS target; `account=None` leaves out what a team makes by hand."""
    aws = ""
    if account is not None:
        aws = f'''
execution-role-arn = "{account.execution_role}"
task-role-arn = "{account.task_role}"
prefect-api-key-secret-arn = "{account.secret}"
'''
        if subnets:
            aws += f'''subnets = ["{account.subnet}"]
security-groups = ["{account.security_group}"]
'''
    return f'''
[tool.flowship]
project = "{project}"
ecr-repository = "{project}"

[tool.flowship.pools]
ecs = "{pool}"
local = "{pool}-local"

[tool.flowship.aws]
region = "{REGION}"
cluster = "{project}"
log-group = "/{project}"
{aws}
{extra}
[[tool.flowship.aws.gpu-capacity]]
name = "{account.capacity if account else 'gpu-g5-xlarge'}"
instance-type = "g5.xlarge"
gpus = 1
vcpus = 4
memory = 16384
disk = 250

[[tool.flowship.aws.gpu-capacity]]
name = "gpu-g5-12xlarge"
instance-type = "g5.12xlarge"
gpus = 4
vcpus = 48
memory = 196608
disk = 3800
'''


def flow_source(name: str, machine: str) -> str:
    return f'''
from prefect import flow
from flowship import AwsEcsImage, AwsEcsMachine, Workflow

workflow = Workflow(machine=AwsEcsMachine({machine}))

@flow(name="{name}")
def main(epochs: int = 3) -> int:
    return epochs
'''


GPU = "is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml"
CPU = "cpu_value=256, memory_value=512, storage=30, image=AwsEcsImage.base"
HUGE = "is_gpu=True, gpu_count=8, cpu_value=4096, memory_value=8192, image=AwsEcsImage.ml"
MACHINES = {
    HUGE: AwsEcsMachine(is_gpu=True, gpu_count=8, cpu_value=4096, memory_value=8192, image="ml"),
    GPU: AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image="ml"),
    CPU: AwsEcsMachine(cpu_value=256, memory_value=512, storage=30, image="base"),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config_for(repo: Repo, env: dict[str, str]) -> Config:
    return load_config(Path(repo.path), env)


def plan_for(repo: Repo, flows: dict[str, str], scope: Scope, *, delete: tuple[str, ...] = ()) -> Plan:
    """A plan deploying `flows` (name -> machine source) at the repository's HEAD."""
    workflows = tuple(
        PlannedWorkflow(
            name=name,
            file=f"flows/{name}.py",
            entrypoint=f"flows/{name}.py:main",
            deployment=deployment_name(name, scope),
            image=MACHINES[machine].family,
            workflow=Workflow(machine=MACHINES[machine]),
            reasons=(f"flows/{name}.py",),
            line=5,
        )
        for name, machine in flows.items()
    )
    return Plan(
        base=None, head=repo.head(), scope=scope, workflows=workflows,
        delete=tuple(Deletion(n, deployment_name(n, scope)) for n in delete),
    )


def commit_flows(
    repo: Repo, project: str, pool: str, account: Account | None, flows: dict[str, str], *, subnets: bool = True
) -> str:
    files = {"pyproject.toml": pyproject(account, project=project, pool=pool, subnets=subnets)}
    files |= {f"flows/{name}.py": flow_source(name, machine) for name, machine in flows.items()}
    return repo.commit(files)


def ci_pyproject(account: Account, *, project: str, pool: str, python_image: str, registry_host: str) -> str:
    """An ECS repository whose `base` and `ml` families build FROM the local Python image into `registry_host`.

    The larger GPU capacity is created too, so bootstrap finds nothing missing.
    """
    boto3.client("ecs", region_name=REGION).create_capacity_provider(
        name="gpu-g5-12xlarge", autoScalingGroupProvider={"autoScalingGroupArn": "arn:aws:autoscaling:x"}
    )
    images = (
        f'[tool.flowship.images.base]\nargs = {{ base_image = "{python_image}" }}\n'
        f'[tool.flowship.images.ml]\ntemplate = "docker/ml.Dockerfile.j2"\nargs = {{ base_image = "{python_image}" }}\n'
    )
    return pyproject(account, project=project, pool=pool, extra=images).replace(
        f'ecr-repository = "{project}"\n', f'ecr-repository = "{project}"\nregistry = "{registry_host}/{project}"\n'
    )

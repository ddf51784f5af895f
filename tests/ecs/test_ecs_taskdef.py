"""Task definitions and job variables as data: no AWS, checked against prefect-aws's own models."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowship.config import parse_config
from flowship.ecs import Network, job_variables
from flowship.ecs.placement import place
from flowship.ecs.pool import REQUIRED_VARIABLES, base_job_template, check_pool
from flowship.scope import Scope
from flowship.ecs.taskdef import FAMILY_MAX, SCOPE_SEPARATOR, build_spec, differences, family_name
from flowship.workflow import AwsEcsMachine

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prefect-key"
CONFIG = f'''
[tool.flowship.aws]
region = "us-east-1"
execution-role-arn = "arn:aws:iam::123456789012:role/exec"
prefect-api-key-secret-arn = "{SECRET}"
subnets = ["subnet-1"]
[[tool.flowship.aws.gpu-capacity]]
name = "gpu-g5"
instance-type = "g5.xlarge"
gpus = 1
vcpus = 4
memory = 16384
disk = 250
'''


@pytest.fixture
def config():
    return parse_config(CONFIG, root=Path("."), env={"PREFECT_API_URL": "http://prefect:4200/api", "PREFECT_API_KEY": "pnu_x"})


def spec_for(config, machine, scope=Scope.main()):
    capacity = place(machine, config.aws.gpu_capacity) if machine.is_gpu else None
    return build_spec(config, flow="train", machine=machine, scope=scope, image="repo@sha256:" + "a" * 64,
                      sha="f" * 40, region="us-east-1", capacity=capacity)


def test_family_names_are_readable_and_never_shared():
    main, preview = Scope.main(), Scope.preview("feature/x")
    assert family_name("flowship", "train", main) == "flowship-train--main"
    assert family_name("flowship", "train", preview) == f"flowship-train--{preview.slug}"
    # Flow "a-b" in scope "c" and flow "a" in scope "b-c" must not collide.
    assert family_name("p", "a-b", Scope.preview("c")) != family_name("p", "a", Scope.preview("b-c"))
    odd = [family_name("p", n, main) for n in ("my flow", "my.flow", "my--flow", "x" * 400)]
    assert len(set(odd)) == 4
    for family in odd:
        assert len(family) <= FAMILY_MAX and all(c.isalnum() or c in "-_" for c in family)
        assert family.rsplit(SCOPE_SEPARATOR, 1)[1] == "main"  # the scope stays readable at the end


def test_gpu_machine_runs_on_ec2_with_a_gpu_requirement(config):
    spec = spec_for(config, AwsEcsMachine(is_gpu=True, gpu_count=1, cpu_value=2048, memory_value=4096, image="ml"))
    request = spec.request
    assert request["requiresCompatibilities"] == ["EC2"]
    assert request["networkMode"] == "awsvpc"  # subnets are configured
    container = request["containerDefinitions"][0]
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert (container["cpu"], container["memory"]) == (2048, 4096)
    assert "ephemeralStorage" not in request
    assert spec.capacity is not None and spec.capacity.name == "gpu-g5"


def test_cpu_machine_runs_on_fargate_with_ephemeral_storage(config):
    spec = spec_for(config, AwsEcsMachine(cpu_value=512, memory_value=1024, storage=40))
    request = spec.request
    assert request["requiresCompatibilities"] == ["FARGATE"]
    assert request["networkMode"] == "awsvpc"
    assert request["ephemeralStorage"] == {"sizeInGiB": 40}
    assert (request["cpu"], request["memory"]) == ("512", "1024")
    assert spec.capacity is None


def test_the_api_key_is_a_secret_reference_never_a_value(config):
    for machine in (AwsEcsMachine(), AwsEcsMachine(is_gpu=True, cpu_value=1024, memory_value=2048)):
        container = spec_for(config, machine).request["containerDefinitions"][0]
        assert container["secrets"] == [{"name": "PREFECT_API_KEY", "valueFrom": SECRET}]
        assert container["environment"] == [{"name": "PREFECT_API_URL", "value": "http://prefect:4200/api"}]
        assert "pnu_x" not in repr(spec_for(config, machine))


def test_differences_ignore_what_ecs_adds_and_see_what_changed(config):
    request = spec_for(config, AwsEcsMachine(storage=30)).request
    described = {
        **request, "taskDefinitionArn": "arn:...:1", "revision": 1, "status": "ACTIVE", "volumes": [],
        "compatibilities": ["EC2", "FARGATE"],
        "containerDefinitions": [
            {**request["containerDefinitions"][0], "cpu": 0, "portMappings": [], "mountPoints": [],
             "environment": list(reversed(request["containerDefinitions"][0]["environment"]))}
        ],
    }
    assert differences(request, described) == []
    changed = {**described, "containerDefinitions": [{**described["containerDefinitions"][0], "image": "other"}]}
    assert differences(request, changed) == ["container.image"]
    assert differences(request, {**described, "executionRoleArn": None}) == ["executionRoleArn"]
    assert differences(request, None)


def test_job_variables_are_prefect_aws_variables_and_render_a_run_request(config):
    """The names and shapes are prefect-aws 0.7.12's: its own models accept them, and
    its template turns them into the RunTask request flowship means."""
    from prefect.utilities.templating import apply_values
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSVariables

    network = Network("vpc-1", ("subnet-1",), ("sg-1",), False)
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/flowship-train--main:3"
    template = base_job_template(config, network.job_variables())
    gpu = spec_for(config, AwsEcsMachine(is_gpu=True, cpu_value=1024, memory_value=2048))
    cpu = spec_for(config, AwsEcsMachine())
    for spec in (gpu, cpu):
        variables = job_variables(config, spec, arn, network)
        ECSVariables.model_validate(variables)
        defaults = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
        rendered = apply_values(template["job_configuration"], defaults | variables)
        job = ECSJobConfiguration.model_validate(rendered)
        request = job.task_run_request
        assert request["taskDefinition"] == arn
        assert request["cluster"] == config.aws.cluster
        assert job.prefect_api_key_secret_arn == SECRET
        if spec is gpu:
            assert request["capacityProviderStrategy"] == [{"capacityProvider": "gpu-g5", "weight": 1, "base": 0}]
        else:
            assert request["launchType"] == "FARGATE"
            assert job.vpc_id == "vpc-1"
            assert job.network_configuration["subnets"] == ["subnet-1"]


def test_the_pool_template_carries_gpu_requirements_and_flowship_variables(config):
    from prefect.utilities.templating import apply_values

    template = base_job_template(config)
    assert set(REQUIRED_VARIABLES) <= set(template["variables"]["properties"])
    values = {"resource_requirements": [{"type": "GPU", "value": "2"}], "requires_compatibilities": ["EC2"]}
    rendered = apply_values(template["job_configuration"], values)
    assert rendered["task_definition"]["containerDefinitions"][0]["resourceRequirements"] == values["resource_requirements"]
    assert rendered["task_definition"]["requiresCompatibilities"] == ["EC2"]
    assert template["variables"]["properties"]["cluster"]["default"] == config.aws.cluster


def test_pool_check_names_what_is_wrong():
    class Pool:
        def __init__(self, type, template):
            self.type, self.base_job_template = type, template

    assert not check_pool(None, "p").exists
    assert "not 'ecs'" in check_pool(Pool("process", {}), "p").problems[0]
    bare = {"variables": {"properties": {"cluster": {}}}}
    assert "task_definition_arn" in check_pool(Pool("ecs", bare), "p").problems[0]

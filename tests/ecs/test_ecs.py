"""The ECS target end to end against moto (server mode) and a real Prefect server."""

from __future__ import annotations

import json

import boto3
import pytest

from flowship.ecs.bootstrap import ecs_pool
from flowship.deploy import cleanup_branch, deploy_plan
from flowship.deploy.client import open_client
from flowship.ecs import EcsTarget
from flowship.errors import FlowshipError
from flowship.scope import Scope
from flowship.ecs.taskdef import family_name
from testing.ecs import (
    API_KEY, CPU, GPU, HUGE, IMAGES, commit_flows, config_for, flow_source, make_account, plan_for, unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(repo, aws, prefect_api):
    """A repository with one GPU and one CPU flow, an AWS account, and the ECS pool."""
    project, pool = unique("fs"), unique("ecs-pool")
    account = make_account()
    gpu, cpu = unique("train"), unique("etl")
    commit_flows(repo, project, pool, account, {gpu: GPU, cpu: CPU})
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws, "PREFECT_API_KEY": API_KEY}
    config = config_for(repo, env)
    boto3.client("ecs", region_name="us-east-1").create_cluster(clusterName=config.aws.cluster)
    ecs_pool(config, {})
    return config, account, gpu, cpu


def ecs():
    return boto3.client("ecs", region_name="us-east-1")


def deployment(config, name):
    with open_client(config) as client:
        return client.read_deployment_by_name(name)


def every_revision(family):
    return [arn for status in ("ACTIVE", "INACTIVE")
            for arn in ecs().list_task_definitions(familyPrefix=family, status=status)["taskDefinitionArns"]]


def active(family):
    return ecs().list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


def test_gpu_and_cpu_workflows_get_their_task_definitions(setup, repo):
    config, account, gpu, cpu = setup
    plan = plan_for(repo, {gpu: GPU, cpu: CPU}, Scope.main())
    result = deploy_plan(config, plan, EcsTarget(config), IMAGES)
    assert sorted(result.created) == sorted([f"{gpu}/main", f"{cpu}/main"]), result.outcomes

    gpu_dep = deployment(config, f"{gpu}/main")
    arn = gpu_dep.job_variables["task_definition_arn"]
    td = ecs().describe_task_definition(taskDefinition=arn, include=["TAGS"])
    definition = td["taskDefinition"]
    assert definition["family"] == family_name(config.project, gpu, Scope.main())
    assert definition["requiresCompatibilities"] == ["EC2"]
    container = definition["containerDefinitions"][0]
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert container["image"] == IMAGES["ml"]
    assert gpu_dep.work_pool_name == config.ecs_pool
    assert gpu_dep.job_variables["capacity_provider_strategy"] == [
        {"capacityProvider": account.capacity, "weight": 1, "base": 0}
    ]
    assert "launch_type" not in gpu_dep.job_variables
    assert gpu_dep.job_variables["cluster"] == config.aws.cluster
    tags = {t["key"]: t["value"] for t in td["tags"]}
    assert tags["flowship:scope"] == "main" and tags["flowship:sha"] == plan.head[:12]

    cpu_dep = deployment(config, f"{cpu}/main")
    cpu_def = ecs().describe_task_definition(taskDefinition=cpu_dep.job_variables["task_definition_arn"])["taskDefinition"]
    assert cpu_def["requiresCompatibilities"] == ["FARGATE"]
    assert cpu_def["networkMode"] == "awsvpc"
    assert cpu_def["ephemeralStorage"] == {"sizeInGiB": 30}
    assert (cpu_def["cpu"], cpu_def["memory"]) == ("256", "512")
    assert "resourceRequirements" not in cpu_def["containerDefinitions"][0]
    variables = cpu_dep.job_variables
    assert variables["launch_type"] == "FARGATE"
    assert variables["vpc_id"] == account.vpc
    assert variables["network_configuration"]["subnets"] == [account.subnet]
    assert variables["network_configuration"]["securityGroups"] == [account.security_group]


def test_api_key_is_only_a_secret_reference(setup, repo):
    config, account, gpu, cpu = setup
    deploy_plan(config, plan_for(repo, {gpu: GPU, cpu: CPU}, Scope.main()), EcsTarget(config), IMAGES)
    for name in (gpu, cpu):
        dep = deployment(config, f"{name}/main")
        definition = ecs().describe_task_definition(taskDefinition=dep.job_variables["task_definition_arn"])
        container = definition["taskDefinition"]["containerDefinitions"][0]
        assert container["secrets"] == [{"name": "PREFECT_API_KEY", "valueFrom": account.secret}]
        assert all(e["name"] != "PREFECT_API_KEY" for e in container.get("environment", []))
        assert API_KEY not in json.dumps(definition, default=str)
        assert API_KEY not in json.dumps(dep.job_variables)
        assert dep.job_variables["prefect_api_key_secret_arn"] == account.secret


def test_rerun_registers_nothing_and_writes_nothing(setup, repo):
    config, _, gpu, cpu = setup
    plan = plan_for(repo, {gpu: GPU, cpu: CPU}, Scope.main())
    deploy_plan(config, plan, EcsTarget(config), IMAGES)
    before = {n: deployment(config, f"{n}/main").updated for n in (gpu, cpu)}

    families = [family_name(config.project, name, Scope.main()) for name in (gpu, cpu)]
    revisions = {f: every_revision(f) for f in families}
    again = deploy_plan(config, plan, EcsTarget(config), IMAGES)
    assert sorted(again.unchanged) == sorted([f"{gpu}/main", f"{cpu}/main"]), again.outcomes
    assert {f: every_revision(f) for f in families} == revisions  # no revision registered (or deregistered)
    for name in (gpu, cpu):
        assert len(active(family_name(config.project, name, Scope.main()))) == 1
        assert deployment(config, f"{name}/main").updated == before[name]


def test_a_new_image_registers_a_new_revision_and_updates_the_deployment(setup, repo):
    config, _, gpu, _ = setup
    deploy_plan(config, plan_for(repo, {gpu: GPU}, Scope.main()), EcsTarget(config), IMAGES)
    repo.commit({"flows/helper.py": "X = 1\n"})
    newer = dict(IMAGES, ml=IMAGES["ml"].replace("a" * 64, "c" * 64))
    result = deploy_plan(config, plan_for(repo, {gpu: GPU}, Scope.main()), EcsTarget(config), newer)
    assert result.updated == [f"{gpu}/main"]
    arn = deployment(config, f"{gpu}/main").job_variables["task_definition_arn"]
    assert arn.endswith(":2")
    assert ecs().describe_task_definition(taskDefinition=arn)["taskDefinition"]["containerDefinitions"][0]["image"] == newer["ml"]


def test_deleted_flow_loses_deployment_and_task_definitions(setup, repo):
    config, _, gpu, cpu = setup
    deploy_plan(config, plan_for(repo, {gpu: GPU, cpu: CPU}, Scope.main()), EcsTarget(config), IMAGES)
    repo.commit({f"flows/{cpu}.py": None})
    result = deploy_plan(config, plan_for(repo, {}, Scope.main(), delete=(cpu,)), EcsTarget(config), IMAGES)
    assert result.deleted == [f"{cpu}/main"]
    assert active(family_name(config.project, cpu, Scope.main())) == []
    assert len(active(family_name(config.project, gpu, Scope.main()))) == 1
    from prefect.exceptions import ObjectNotFound

    with pytest.raises(ObjectNotFound):
        deployment(config, f"{cpu}/main")


def test_preview_cleanup_leaves_main_untouched(setup, repo):
    config, _, gpu, _ = setup
    preview = Scope.preview("feature/faster-training", pr=7)
    deploy_plan(config, plan_for(repo, {gpu: GPU}, Scope.main()), EcsTarget(config), IMAGES)
    deploy_plan(config, plan_for(repo, {gpu: GPU}, preview), EcsTarget(config), IMAGES)
    preview_family = family_name(config.project, gpu, preview)
    assert len(active(preview_family)) == 1

    result = cleanup_branch(config, "feature/faster-training", EcsTarget(config))
    assert result.deleted == [f"{gpu}/{preview.slug}"]
    assert active(preview_family) == []
    main_arn = deployment(config, f"{gpu}/main").job_variables["task_definition_arn"]
    assert active(family_name(config.project, gpu, Scope.main())) == [main_arn]


def test_machine_that_fits_no_capacity_fails_naming_the_limit(setup, repo):
    config, _, _, _ = setup
    huge = unique("huge")
    repo.commit({f"flows/{huge}.py": flow_source(huge, HUGE)})
    result = deploy_plan(config, plan_for(repo, {huge: HUGE}, Scope.main()), EcsTarget(config), IMAGES)
    [outcome] = result.outcomes
    assert outcome.status == "failed"
    assert "gpu_count=8 > 4 GPUs" in outcome.detail and "gpu-g5-12xlarge" in outcome.detail
    assert outcome.file == f"flows/{huge}.py"
    assert ecs().list_task_definition_families(familyPrefix=config.project)["families"] == []


def test_missing_image_fails_with_the_fix(setup, repo):
    config, _, gpu, _ = setup
    result = deploy_plan(config, plan_for(repo, {gpu: GPU}, Scope.main()), EcsTarget(config), {"base": IMAGES["base"]})
    [outcome] = result.outcomes
    assert outcome.status == "failed" and "--images" in outcome.detail


def test_pool_that_is_missing_or_of_another_type_is_explained(repo, aws, prefect_api):
    project, pool = unique("fs"), unique("ecs-pool")
    account = make_account()
    commit_flows(repo, project, pool, account, {})
    config = config_for(repo, {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws})
    plan = plan_for(repo, {}, Scope.main())
    with pytest.raises(FlowshipError, match="flowship bootstrap"):
        deploy_plan(config, plan, EcsTarget(config), IMAGES)

    from prefect.client.schemas.actions import WorkPoolCreate

    with open_client(config) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    with pytest.raises(FlowshipError, match="type 'process', not 'ecs'"):
        deploy_plan(config, plan, EcsTarget(config), IMAGES)


def test_cli_deploys_a_plan_file_with_an_images_file_to_ecs(setup, repo, tmp_path, capsys):
    from flowship.cli import main

    config, _, gpu, cpu = setup
    plan_file, images_file = tmp_path / "plan.json", tmp_path / "images.json"
    plan_file.write_text(plan_for(repo, {gpu: GPU, cpu: CPU}, Scope.main()).dumps())
    images_file.write_text(json.dumps({"images": IMAGES, "failed": {}}))
    env = {"PREFECT_API_URL": config.env.prefect_api_url, "AWS_ENDPOINT_URL": config.env.aws_endpoint_url}
    argv = ["--root", str(repo.path), "deploy", "--plan", str(plan_file), "--images", str(images_file), "--target", "ecs"]
    assert main(argv, env=env) == 0, capsys.readouterr().err
    assert "2 created" in capsys.readouterr().err
    assert main(argv, env=env) == 0
    assert "2 unchanged" in capsys.readouterr().err

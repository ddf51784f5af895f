"""`flowship bootstrap` against moto (server mode) and a real Prefect server, through the CLI."""

from __future__ import annotations

import json

import boto3
import pytest

from flowship.ecs.bootstrap import LIFECYCLE_POLICY
from flowship.cli import main
from flowship.deploy.client import open_client
from flowship.ecs.pool import REQUIRED_VARIABLES
from testing.ecs import REGION, commit_flows, config_for, make_account, unique

pytestmark = pytest.mark.integration


def bootstrap(repo, env, *extra):
    return main(["--root", str(repo.path), "bootstrap", *extra], env=env)


@pytest.fixture
def env(aws, prefect_api):
    return {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws}


def test_bootstrap_creates_what_it_can_then_changes_nothing(repo, env, capsys):
    project, pool = unique("fs"), unique("ecs-pool")
    account = make_account()
    commit_flows(repo, project, pool, account, {})
    # The second capacity in the configuration exists too, so nothing is missing.
    boto3.client("ecs", region_name=REGION).create_capacity_provider(
        name="gpu-g5-12xlarge", autoScalingGroupProvider={"autoScalingGroupArn": "arn:aws:autoscaling:x"}
    )

    assert bootstrap(repo, env) == 0, capsys.readouterr().err
    first = capsys.readouterr().err
    assert f"created  ECR repository {project}" in first
    assert f"created  ECS cluster {project}" in first
    assert f"created  Prefect work pool {pool}" in first
    assert "updated  GPU capacity provider gpu-g5-xlarge: attached" in first

    ecr = boto3.client("ecr", region_name=REGION)
    repository = ecr.describe_repositories(repositoryNames=[project])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName=project)["lifecyclePolicyText"])
    assert policy == LIFECYCLE_POLICY
    cluster = boto3.client("ecs", region_name=REGION).describe_clusters(clusters=[project])["clusters"][0]
    assert sorted(cluster["capacityProviders"]) == ["gpu-g5-12xlarge", "gpu-g5-xlarge"]
    logs = boto3.client("logs", region_name=REGION).describe_log_groups(logGroupNamePrefix=f"/{project}")
    assert [g["logGroupName"] for g in logs["logGroups"]] == [f"/{project}"]
    config = config_for(repo, env)
    with open_client(config) as client:
        work_pool = client.read_work_pool(pool)
    assert work_pool.type == "ecs"
    properties = work_pool.base_job_template["variables"]["properties"]
    assert set(REQUIRED_VARIABLES) | {"resource_requirements"} <= set(properties)
    assert properties["vpc_id"]["default"] == account.vpc
    assert properties["execution_role_arn"]["default"] == account.execution_role

    assert bootstrap(repo, env) == 0
    second = capsys.readouterr().err
    assert "nothing to change" in second
    assert "created" not in second and "updated" not in second
    with open_client(config) as client:
        assert client.read_work_pool(pool).updated == work_pool.updated


def test_bootstrap_explains_each_missing_piece(repo, env, capsys):
    project, pool = unique("fs"), unique("ecs-pool")
    commit_flows(repo, project, pool, None, {})
    repo.commit({"pyproject.toml": (repo.path / "pyproject.toml").read_text().replace(
        f'log-group = "/{project}"',
        f'log-group = "/{project}"\nprefect-api-key-secret-arn = "arn:aws:secretsmanager:{REGION}:123456789012:secret:nope"\n'
        'subnets = ["subnet-00000000"]',
    )})

    assert bootstrap(repo, env) == 1
    err = capsys.readouterr().err
    assert "missing  GPU capacity provider gpu-g5-xlarge" in err and "create-capacity-provider" in err
    assert "missing  execution role: set [tool.flowship.aws] execution-role-arn" in err
    assert "missing  Prefect API key secret" in err and "does not exist" in err
    assert "missing  subnets" in err and "subnet-00000000" in err
    # What it can create, it still created.
    assert f"created  ECS cluster {project}" in err
    assert f"created  Prefect work pool {pool}" in err


def test_bootstrap_refuses_a_pool_of_another_type(repo, env, capsys):
    from prefect.client.schemas.actions import WorkPoolCreate

    project, pool = unique("fs"), unique("ecs-pool")
    commit_flows(repo, project, pool, make_account(), {})
    boto3.client("ecs", region_name=REGION).create_capacity_provider(
        name="gpu-g5-12xlarge", autoScalingGroupProvider={"autoScalingGroupArn": "arn:aws:autoscaling:x"}
    )
    with open_client(config_for(repo, env)) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    assert bootstrap(repo, env) == 1
    assert "is of type 'process', not 'ecs'" in capsys.readouterr().err


def test_bootstrap_local_creates_the_process_pool_once(repo, env, capsys):
    project, pool = unique("fs"), unique("pool")
    commit_flows(repo, project, pool, None, {})
    assert bootstrap(repo, env, "--target", "local") == 0
    assert f"created  Prefect work pool {pool}-local" in capsys.readouterr().err
    assert bootstrap(repo, env, "--target", "local") == 0
    assert "nothing to change" in capsys.readouterr().err
    with open_client(config_for(repo, env)) as client:
        assert client.read_work_pool(f"{pool}-local").type == "process"

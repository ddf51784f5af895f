"""The Run path: a real prefect-aws ECS worker picks up a run of a flowship deployment
and calls RunTask (on moto) with the task definition flowship registered."""

from __future__ import annotations

import json
import os
import subprocess
import time

import boto3
import pytest

from flowship.cli import main
from flowship.deploy import deploy_plan
from flowship.deploy.client import open_client
from flowship.ecs import EcsTarget
from flowship.scope import Scope
from testing.ecs import API_KEY, GPU, IMAGES, REGION, commit_flows, config_for, make_account, plan_for, unique
from testing.servers import BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def add_gpu_instance(cluster: str) -> str:
    """An EC2 instance registered as a container instance: the GPU capacity the task lands on."""
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="g5.xlarge", MinCount=1, MaxCount=1)["Instances"][0]
    ecs = boto3.client("ecs", region_name=REGION)
    document = json.dumps({"instanceId": instance["InstanceId"]})
    return ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=document)["containerInstance"][
        "containerInstanceArn"
    ]


def test_ecs_worker_runs_the_registered_task_definition(repo, aws, prefect_api, tmp_path):
    project, pool = unique("fs"), unique("ecs-pool")
    flow = unique("train")
    account = make_account()
    # No subnets: the GPU task uses bridge networking. (moto 5.2.5 fails RunTask
    # for awsvpc tasks on container instances: its ENI lacks private_dns_name.)
    commit_flows(repo, project, pool, account, {flow: GPU}, subnets=False)
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws}
    boto3.client("ecs", region_name=REGION).create_capacity_provider(
        name="gpu-g5-12xlarge", autoScalingGroupProvider={"autoScalingGroupArn": "arn:aws:autoscaling:x"}
    )
    assert main(["--root", str(repo.path), "bootstrap"], env=env) == 0
    config = config_for(repo, env)
    add_gpu_instance(config.aws.cluster)

    result = deploy_plan(config, plan_for(repo, {flow: GPU}, Scope.main()), EcsTarget(config), IMAGES)
    assert result.created == [f"{flow}/main"], result.outcomes
    with open_client(config) as client:
        deployment = client.read_deployment_by_name(f"{flow}/main")
        run = client.create_flow_run_from_deployment(deployment.id)
    arn = deployment.job_variables["task_definition_arn"]

    worker_env = os.environ | env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "AWS_DEFAULT_REGION": REGION,
        # A worker that has an API key, as any worker of a keyed Prefect API does.
        # (prefect-aws 0.7.12 fails with KeyError when prefect_api_key_secret_arn
        # is set and the worker has none; docs/ecs.md.) The local server ignores it.
        "PREFECT_API_KEY": API_KEY,
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "ecs", "--no-create-pool-if-not-found"],
        env=worker_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    ecs = boto3.client("ecs", region_name=REGION)
    tasks: list[dict] = []
    try:
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline and not tasks:
            assert worker.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
            listed = ecs.list_tasks(cluster=config.aws.cluster)["taskArns"]
            if listed:
                tasks = ecs.describe_tasks(cluster=config.aws.cluster, tasks=listed)["tasks"]
            else:
                time.sleep(1)
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert tasks, f"no ECS task was started for flow run {run.id}:\n{log.read_text()[-3000:]}"
    [task] = tasks
    assert task["taskDefinitionArn"] == arn
    assert task["capacityProviderName"] == account.capacity
    overrides = task["overrides"]["containerOverrides"][0]
    assert overrides["name"] == "prefect"
    env_names = {e["name"]: e["value"] for e in overrides.get("environment", [])}
    assert env_names.get("PREFECT__FLOW_RUN_ID") == str(run.id)
    # The worker's own key never travels in plain text: the task reads the secret.
    assert "PREFECT_API_KEY" not in env_names

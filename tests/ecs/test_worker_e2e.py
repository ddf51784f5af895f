"""The Run path: a real prefect-aws ECS worker picks up a run of a flowship deployment
and calls RunTask (on moto) with the task definition flowship registered."""

from __future__ import annotations

import threading
import time

import boto3
import pytest

from flowship.cli import main
from flowship.deploy import deploy_plan
from flowship.deploy.client import open_client
from flowship.ecs import EcsTarget
from flowship.scope import Scope
from testing.ecs import GPU, IMAGES, REGION, commit_flows, config_for, make_account, plan_for, unique
from testing.worker import add_gpu_instance, start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def gpu_account(repo, project: str, pool: str, flow: str, env: dict[str, str]):
    """An account with a GPU flow's repository bootstrapped (own infrastructure) and a GPU
    container instance in the cluster: (the account, the commit, the configuration)."""
    account = make_account()
    # No subnets: the GPU task uses bridge networking. (moto 5.2.5 fails RunTask for awsvpc
    # tasks on container instances in a VPC without DNS hostnames: its ENI has no private_dns_name.)
    first = commit_flows(repo, project, pool, account, {flow: GPU}, subnets=False)
    boto3.client("ecs", region_name=REGION).create_capacity_provider(
        name="gpu-g5-12xlarge", autoScalingGroupProvider={"autoScalingGroupArn": "arn:aws:autoscaling:x"}
    )
    assert main(["--root", str(repo.path), "bootstrap", "--no-stack"], env=env) == 0
    config = config_for(repo, env)
    add_gpu_instance(config.aws.cluster)
    return account, first, config


def test_ecs_worker_runs_the_registered_task_definition(repo, aws, prefect_api, tmp_path):
    project, pool = unique("fs"), unique("ecs-pool")
    flow = unique("train")
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws}
    account, _, config = gpu_account(repo, project, pool, flow, env)

    result = deploy_plan(config, plan_for(repo, {flow: GPU}, Scope.main()), EcsTarget(config), IMAGES)
    assert result.created == [f"{flow}/main"], result.outcomes
    with open_client(config) as client:
        deployment = client.read_deployment_by_name(f"{flow}/main")
        run = client.create_flow_run_from_deployment(deployment.id)
    arn = deployment.job_variables["task_definition_arn"]

    worker = start_worker(pool, env, tmp_path)
    log = tmp_path / "worker.log"
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
        stop(worker)
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


def test_a_failed_smoke_run_on_ecs_rolls_back_to_the_previous_task_definition(repo, aws, prefect_api, tmp_path):
    """Issue 15 on the ECS target: the real worker runs the new commit's task definition, the
    run fails, and the deployment goes back to the previous revision's ARN (still registered)."""
    from dataclasses import replace

    from prefect.states import Failed, Running

    from flowship.deploy.state import read_last_deployed, read_rollbacks
    from flowship.deploy.verify import snapshot, verify
    from flowship.workflow import Workflow
    from testing.ecs import MACHINES, flow_source

    project, pool, flow = unique("fs"), unique("ecs-pool"), unique("train")
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": aws}
    account, first, config = gpu_account(repo, project, pool, flow, env)
    smoked = Workflow(machine=MACHINES[GPU], smoke={"epochs": 1}, timeout_seconds=90)

    def plan():
        p = plan_for(repo, {flow: GPU}, Scope.main())
        return replace(p, workflows=tuple(replace(w, workflow=smoked) for w in p.workflows))

    target = EcsTarget(config)
    assert deploy_plan(config, plan(), target, IMAGES).created == [f"{flow}/main"]
    with open_client(config) as client:
        old_arn = client.read_deployment_by_name(f"{flow}/main").job_variables["task_definition_arn"]

    # The next commit, with another code image: a new revision of the family.
    second = repo.commit({f"flows/{flow}.py": flow_source(flow, GPU) + "\n# v2\n"})
    new_images = {family: ref.replace("@sha256:" + "a" * 64, "@sha256:" + "c" * 64)
                  .replace("@sha256:" + "b" * 64, "@sha256:" + "d" * 64) for family, ref in IMAGES.items()}
    planned = plan()
    before = snapshot(config, planned)
    result = deploy_plan(config, planned, target, new_images)
    assert result.updated == [f"{flow}/main"], result.outcomes
    with open_client(config) as client:
        new_arn = client.read_deployment_by_name(f"{flow}/main").job_variables["task_definition_arn"]
    assert new_arn != old_arn and new_arn.rsplit(":", 1)[-1] == "2"

    ecs = boto3.client("ecs", region_name=REGION)
    started: list[dict] = []

    def container() -> None:
        """What the task's container would do on ECS: run the flow run it was given, and fail."""
        deadline = time.monotonic() + 80
        while time.monotonic() < deadline:
            listed = ecs.list_tasks(cluster=config.aws.cluster)["taskArns"]
            if listed:
                [task] = ecs.describe_tasks(cluster=config.aws.cluster, tasks=listed)["tasks"]
                started.append(task)
                overrides = task["overrides"]["containerOverrides"][0].get("environment", [])
                run_id = {e["name"]: e["value"] for e in overrides}["PREFECT__FLOW_RUN_ID"]
                with open_client(config) as client:
                    client.set_flow_run_state(run_id, Running(), force=True)
                    client.set_flow_run_state(run_id, Failed(message="CUDA error: out of memory"), force=True)
                return
            time.sleep(1)

    worker = start_worker(pool, env, tmp_path)
    runner = threading.Thread(target=container, daemon=True)
    runner.start()
    lines: list[str] = []
    try:
        checked = verify(config, planned, result, before, say=lines.append, poll=1.0)
    finally:
        runner.join(5)
        stop(worker)
    log = (tmp_path / "worker.log").read_text()
    assert started, "the worker never called RunTask:\n" + log[-3000:]
    [task] = started
    # The smoke run ran the new commit's revision on the GPU capacity provider.
    assert task["taskDefinitionArn"] == new_arn and task["capacityProviderName"] == account.capacity
    [smoke] = checked.smokes
    assert not smoke.passed and smoke.rolled_back_to == first, (lines, log[-2000:])
    assert smoke.line().startswith(f"{flow} rolled back to {first[:7]}: smoke run failed: CUDA error: out of memory")
    with open_client(config) as client:
        now = client.read_deployment_by_name(f"{flow}/main")
    assert now.version == first and now.job_variables["task_definition_arn"] == old_arn
    # The revision production went back to is still registered: nothing was rebuilt or re-registered.
    assert ecs.describe_task_definition(taskDefinition=old_arn)["taskDefinition"]["status"] == "ACTIVE"
    assert read_last_deployed(config, Scope.main()) == first
    assert (read_rollbacks(config, Scope.main())[flow]["from"], read_rollbacks(config, Scope.main())[flow]["to"]) == (
        second, first)

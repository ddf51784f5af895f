"""`flowship doctor` on a stack bootstrapped into moto, with a real Prefect server and a real
`prefect worker start --type ecs` whose heartbeats say it polled the pool."""

from __future__ import annotations

import json
import os
import subprocess
import time

import boto3
import pytest

from flowship.cli import main
from testing.ecs import API_KEY, REGION, unique
from testing.moto_cfn import cfn_aws, cfn_moto_server, stack_account, stack_repo  # noqa: F401 (fixtures)
from testing.servers import BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def doctor(repo, env) -> int:
    return main(["--root", str(repo.path), "doctor"], env=env)


def lines(err: str, status: str) -> list[str]:
    found = (line.removeprefix("error: ") for line in err.splitlines())
    return [line for line in found if line.startswith(status)]


def add_capacity_providers(project: str) -> None:
    """What CloudFormation makes and moto's cannot: a capacity provider on each of the stack's GPU groups."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    asg = boto3.client("autoscaling", region_name=REGION)
    resources = cfn.describe_stack_resources(StackName=project)["StackResources"]
    groups = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources
              if r.get("ResourceType") == "AWS::AutoScaling::AutoScalingGroup"}
    names = []
    for logical, name in (("GpuG5XlargeAutoScalingGroup", "gpu-g5-xlarge"), ("GpuG512xlargeAutoScalingGroup", "gpu-g5-12xlarge")):
        arn = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[groups[logical]])["AutoScalingGroups"][0]["AutoScalingGroupARN"]
        ecs.create_capacity_provider(name=name, autoScalingGroupProvider={
            "autoScalingGroupArn": arn, "managedScaling": {"status": "ENABLED"}, "managedTerminationProtection": "ENABLED"})
        names.append(name)
    ecs.put_cluster_capacity_providers(cluster=project, capacityProviders=names, defaultCapacityProviderStrategy=[])


def test_doctor_checks_the_bootstrapped_stack_end_to_end(repo, cfn_aws, prefect_api, tmp_path, capsys):  # noqa: F811
    project, pool = unique("fs"), unique("ecs-pool")
    account = stack_account()
    stack_repo(repo, project, pool, account)
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": cfn_aws, "GITHUB_REPOSITORY": "octo/flows"}
    assert main(["--root", str(repo.path), "bootstrap", "--stack", "--yes", "--write",
                 "--parameter", f"GitHubOidcProviderArn={account['oidc']}"], env=env) == 0, capsys.readouterr().err
    capsys.readouterr()

    # No worker yet, and no capacity providers (moto's CloudFormation skips them).
    assert doctor(repo, env) == 1
    err = capsys.readouterr().err
    failed = lines(err, "FAIL")
    assert any(f"worker: no worker polled {pool}" in line and "no worker ever polled it" in line for line in failed), err
    assert any("capacity provider gpu-g5-xlarge: does not exist" in line for line in failed), err
    ok = lines(err, "ok")
    assert any(f"work pool {pool}" in line for line in ok), err
    for what in ("execution role", "task role", "worker role", "deploy role", "preview role"):
        assert any(line.startswith(f"ok    {what}: trusts") for line in ok), (what, err)
    assert any("Prefect API key secret" in line for line in ok)
    assert any(f"ECR repository {project}" in line and "login works" in line for line in ok)

    add_capacity_providers(project)
    worker_env = os.environ | env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        "AWS_DEFAULT_REGION": REGION, "PREFECT_API_KEY": API_KEY,
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "ecs", "--no-create-pool-if-not-found"],
        env=worker_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        code = 1
        while time.monotonic() < deadline:
            assert worker.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
            code = doctor(repo, env)
            err = capsys.readouterr().err
            if code == 0:
                break
            time.sleep(2)
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert code == 0, f"{err}\n{log.read_text()[-2000:]}"
    assert not lines(err, "FAIL")
    assert any(line.startswith("ok    worker: 1 worker(s); the last polled") for line in lines(err, "ok")), err
    assert any("capacity provider gpu-g5-12xlarge: attached, scales 0-2" in line for line in lines(err, "ok")), err

    # What someone changes by hand afterwards, doctor finds, one line each.
    iam = boto3.client("iam", region_name=REGION)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=project)["Stacks"][0]["Outputs"]}
    deploy_role = outputs["DeployRoleArn"].rsplit("/", 1)[-1]
    trust = iam.get_role(RoleName=deploy_role)["Role"]["AssumeRolePolicyDocument"]
    trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] = ["repo:evil/fork:ref:refs/heads/main"]
    iam.update_assume_role_policy(RoleName=deploy_role, PolicyDocument=json.dumps(trust))
    group = next(r["PhysicalResourceId"] for r in boto3.client("cloudformation", region_name=REGION)
                 .describe_stack_resources(StackName=project)["StackResources"]
                 if r.get("LogicalResourceId") == "GpuG5XlargeAutoScalingGroup")
    boto3.client("autoscaling", region_name=REGION).update_auto_scaling_group(AutoScalingGroupName=group, MaxSize=0, MinSize=0)
    assert doctor(repo, env) == 1
    failed = lines(capsys.readouterr().err, "FAIL")
    assert any("deploy role: does not trust repo:octo/flows:" in line for line in failed), failed
    assert any("capacity provider gpu-g5-xlarge" in line and "MaxSize 0" in line for line in failed), failed

"""From an empty AWS account to pressing Run (issue 14), on moto, a real Prefect server, Docker and a registry.

`flowship bootstrap --stack --yes --write` deploys the stack through a change set and writes
its outputs into pyproject.toml; that configuration, committed, is all `flowship ci` gets: a
push deploys production, a pull request a preview, with task definitions naming the stack's
roles, log group and GPU capacity provider; then a real prefect-aws worker (the command the
stack's worker service runs, here as a process) takes a run of the GPU deployment and calls
RunTask on that capacity.
"""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from flowship.cli import main
from flowship.deploy.client import open_client
from flowship.ecs.taskdef import family_name
from flowship.scope import Scope
from testing.ci import REPO_NAME, ZERO, CiRunner, mirror_to_ecr, pr_payload, push_payload
from testing.deployments import read_back
from testing.ecs import ML_TEMPLATE, REGION, config_for, pyproject, unique
from testing.git import cpu_flow, seed_flow
from testing.moto_cfn import cfn_aws, cfn_moto_server, stack_account  # noqa: F401 (fixtures)
from testing.worker import add_gpu_instance, start_worker, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_empty_account_bootstrapped_then_deployed_by_ci_and_run(
    repo, tmp_path, cfn_aws, prefect_api, local_registry, python_image, capsys  # noqa: F811 (the fixture above)
):
    project, pool = unique("fs"), unique("ecs-pool")
    account = stack_account()
    # As in a default VPC: moto names a task's network interface only when the VPC has DNS hostnames.
    boto3.client("ec2", region_name=REGION).modify_vpc_attribute(VpcId=account["vpc"], EnableDnsHostnames={"Value": True})
    suffix = uuid.uuid4().hex[:6]
    gpu_fn, cpu_fn = f"train_{suffix}", f"etl_{suffix}"
    gpu, cpu = gpu_fn.replace("_", "-"), cpu_fn.replace("_", "-")
    images = (
        f'[tool.flowship.images.base]\nargs = {{ base_image = "{python_image}" }}\n'
        f'[tool.flowship.images.ml]\ntemplate = "docker/ml.Dockerfile.j2"\nargs = {{ base_image = "{python_image}" }}\n'
    )
    # Only what a team decides: names, the network, the API key's secret; the stack makes the rest.
    settings = pyproject(None, project=project, pool=pool, extra=f'subnets = ["{account["subnet"]}"]\n'
                         f'prefect-api-key-secret-arn = "{account["secret"]}"\n' + images).replace(
        f'ecr-repository = "{project}"\n', f'ecr-repository = "{project}"\nregistry = "{local_registry.host}/{project}"\n')
    repo.commit({"pyproject.toml": settings, ".gitignore": ".flowship/\n", "docker/ml.Dockerfile.j2": ML_TEMPLATE,
                 f"flows/{gpu_fn}.py": seed_flow(gpu_fn), f"flows/{cpu_fn}.py": cpu_flow(cpu_fn)}, message="flows")

    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": cfn_aws, "GITHUB_REPOSITORY": REPO_NAME}
    root = ["--root", str(repo.path)]
    assert main([*root, "bootstrap", "--stack", "--parameter", f"GitHubOidcProviderArn={account['oidc']}",
                 "--yes", "--write"], env) == 0, capsys.readouterr().err
    capsys.readouterr()
    cfn = boto3.client("cloudformation", region_name=REGION)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=project)["Stacks"][0]["Outputs"]}
    first = repo.commit({}, message="flowship bootstrap --write: [tool.flowship.aws] from the stack")
    config = config_for(repo, env)
    assert config.aws.execution_role_arn == outputs["ExecutionRoleArn"]
    assert config.aws.security_groups == (outputs["SecurityGroups"],)

    ci = CiRunner(repo.path, tmp_path, {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": cfn_aws,
                                        "FLOWSHIP_TARGET": "ecs"})
    ecs = boto3.client("ecs", region_name=REGION)

    # -- a push to main: both flows on the stack's cluster, roles and capacity ---------------
    step = ci("push", push_payload(before=ZERO, after=first), capsys)
    assert step.code == 0, step.log
    assert step.deployments == {f"{gpu}/main": "created", f"{cpu}/main": "created"}
    live = read_back(prefect_api, [gpu, cpu])
    gpu_vars = live[f"{gpu}/main"]["job_variables"]
    gpu_def = ecs.describe_task_definition(taskDefinition=gpu_vars["task_definition_arn"])["taskDefinition"]
    assert gpu_def["family"] == family_name(project, gpu, Scope.main())
    assert gpu_def["executionRoleArn"] == outputs["ExecutionRoleArn"] and gpu_def["taskRoleArn"] == outputs["TaskRoleArn"]
    assert gpu_def["networkMode"] == "awsvpc"  # the stack's subnets and security group
    log_options = gpu_def["containerDefinitions"][0]["logConfiguration"]["options"]
    assert log_options["awslogs-group"] == config.aws.log_group
    capacity = config.aws.gpu_capacity[0].name
    assert gpu_vars["capacity_provider_strategy"] == [{"capacityProvider": capacity, "weight": 1, "base": 0}]
    # (moto's CloudFormation has no AWS::ECS::CapacityProvider: test_stack.py checks the stack's as data.)
    assert live[f"{gpu}/main"]["work_pool_name"] == pool
    assert "### Cost per run (estimate)" in step.summary
    mirror_to_ecr(local_registry, project, boto3.client("ecr", region_name=REGION), project)

    # -- a pull request: a preview of the flow it changes ------------------------------------
    repo.git("checkout", "-q", "-b", "feat/faster")
    head = repo.commit({f"flows/{cpu_fn}.py": cpu_flow(cpu_fn).replace("rows: int = 10", "rows: int = 12")})
    step = ci("pull_request", pr_payload("opened", number=3, branch="feat/faster", head=head, base=first), capsys)
    assert step.code == 0, step.log
    preview = f"{cpu}/{Scope.preview('feat/faster', 3).name}"
    assert step.deployments == {preview: "created"}
    preview_def = ecs.describe_task_definition(
        taskDefinition=read_back(prefect_api, [cpu])[preview]["job_variables"]["task_definition_arn"])["taskDefinition"]
    assert preview_def["family"] == family_name(project, cpu, Scope.preview("feat/faster", 3))
    assert preview_def["requiresCompatibilities"] == ["FARGATE"]

    # -- Run: the worker takes a run of the GPU deployment and starts it on the GPU capacity -----
    add_gpu_instance(config.aws.cluster)
    with open_client(config) as client:
        run = client.create_flow_run_from_deployment(read_back(prefect_api, [gpu])[f"{gpu}/main"]["id"])
    worker = start_worker(pool, {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": cfn_aws}, tmp_path)
    tasks: list[dict] = []
    try:
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline and not tasks:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            listed = ecs.list_tasks(cluster=config.aws.cluster)["taskArns"]
            tasks = ecs.describe_tasks(cluster=config.aws.cluster, tasks=listed)["tasks"] if listed else []
            time.sleep(0 if tasks else 1)
    finally:
        stop(worker)
    assert tasks, f"no ECS task for flow run {run.id}:\n" + (tmp_path / "worker.log").read_text()[-3000:]
    [task] = tasks
    assert task["taskDefinitionArn"] == gpu_vars["task_definition_arn"]
    assert task["capacityProviderName"] == capacity
    environment = {e["name"]: e["value"] for e in task["overrides"]["containerOverrides"][0].get("environment", [])}
    assert environment["PREFECT__FLOW_RUN_ID"] == str(run.id)

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

    assert bootstrap(repo, env, "--no-stack") == 0, capsys.readouterr().err
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

    assert bootstrap(repo, env, "--no-stack") == 0
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

    assert bootstrap(repo, env, "--no-stack") == 1
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
    assert bootstrap(repo, env, "--no-stack") == 1
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


# --- `bootstrap --stack`: the CloudFormation stack, on moto with change sets (testing/moto_cfn.py) ---

from testing.moto_cfn import cfn_aws, cfn_moto_server, stack_account, stack_repo  # noqa: E402,F401  (fixtures)


@pytest.fixture
def stack_env(cfn_aws, prefect_api):  # noqa: F811 - the fixture imported above
    return {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": cfn_aws, "GITHUB_REPOSITORY": "octo/flows"}


def bootstrap_stack(repo, env, account, *extra):
    return bootstrap(repo, env, "--stack", "--parameter", f"GitHubOidcProviderArn={account['oidc']}", *extra)


def test_bootstrap_stack_deploys_through_a_change_set_then_changes_nothing(repo, stack_env, capsys):
    project, pool = unique("fs"), unique("ecs-pool")
    account = stack_account()
    stack_repo(repo, project, pool, account)

    assert bootstrap_stack(repo, stack_env, account, "--yes") == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "Add     AWS::ECS::CapacityProvider" in err and "AWS::IAM::Role" in err
    assert f"created  CloudFormation stack {project}" in err
    assert f"created  Prefect work pool {pool}" in err

    cfn = boto3.client("cloudformation", region_name=REGION)
    described = cfn.describe_stacks(StackName=project)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    # What moto's CloudFormation made is real in moto's services.
    ecr = boto3.client("ecr", region_name=REGION)
    repository = ecr.describe_repositories(repositoryNames=[project])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    # (moto's CloudFormation ignores the repository's LifecyclePolicy and scan setting: tests/ecs/test_stack.py checks them.)
    ecs = boto3.client("ecs", region_name=REGION)
    assert ecs.describe_clusters(clusters=[project])["clusters"][0]["status"] == "ACTIVE"
    [service] = ecs.describe_services(cluster=project, services=["prefect-worker"])["services"]
    assert service["desiredCount"] == 1  # (its FARGATE launch type moto drops: test_stack.py checks it)
    worker = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    container = worker["containerDefinitions"][0]
    assert container["command"] == ["prefect", "worker", "start", "--pool", pool, "--type", "ecs"]
    assert container["secrets"] == [{"name": "PREFECT_API_KEY", "valueFrom": account["secret"]}]
    iam = boto3.client("iam", region_name=REGION)
    trust = iam.get_role(RoleName=outputs["DeployRoleArn"].rsplit("/", 1)[-1])["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Federated": account["oidc"]}
    assert trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        "repo:octo/flows:ref:refs/heads/main"]
    asgs = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups()["AutoScalingGroups"]
    assert sorted((g["MinSize"], g["MaxSize"], g["NewInstancesProtectedFromScaleIn"]) for g in asgs) == [(0, 2, True)] * 2

    # The printed table is the stack's outputs; the pool's defaults are too.
    assert f'execution-role-arn = "{outputs["ExecutionRoleArn"]}"' in out
    assert f'subnets = ["{account["subnet"]}"]' in out
    assert f'security-groups = ["{outputs["SecurityGroups"]}"]' in out
    config = config_for(repo, stack_env)
    with open_client(config) as client:
        work_pool = client.read_work_pool(pool)
    properties = work_pool.base_job_template["variables"]["properties"]
    assert properties["execution_role_arn"]["default"] == outputs["ExecutionRoleArn"]
    assert properties["task_role_arn"]["default"] == outputs["TaskRoleArn"]
    assert properties["vpc_id"]["default"] == account["vpc"]
    assert properties["cluster"]["default"] == project

    # Nothing changed: no change set is executed or left behind, and it says so.
    assert bootstrap_stack(repo, stack_env, account) == 0
    err = capsys.readouterr().err
    assert f"exists  CloudFormation stack {project}: no changes" in err
    assert "the change set:" not in err and "created" not in err and "updated" not in err
    # (moto keeps executed change sets listed; CloudFormation drops them.)
    left = cfn.list_change_sets(StackName=project)["Summaries"]
    assert [s["ExecutionStatus"] for s in left] == ["EXECUTE_COMPLETE"]
    with open_client(config) as client:
        assert client.read_work_pool(pool).updated == work_pool.updated

    # --write puts the outputs into pyproject.toml; a configuration read from it names the stack's roles.
    assert bootstrap_stack(repo, stack_env, account, "--write") == 0
    written = config_for(repo, stack_env)
    assert written.aws.execution_role_arn == outputs["ExecutionRoleArn"]
    assert written.aws.security_groups == (outputs["SecurityGroups"],)
    assert written.aws.gpu_capacity == config.aws.gpu_capacity


def test_bootstrap_stack_asks_before_applying_and_applies_nothing_without_an_answer(repo, stack_env, capsys):
    project, pool = unique("fs"), unique("ecs-pool")
    account = stack_account()
    stack_repo(repo, project, pool, account)
    # The stack is what `bootstrap` does for the ECS target, without --stack.
    assert bootstrap(repo, stack_env, "--parameter", f"GitHubOidcProviderArn={account['oidc']}") == 1  # no terminal
    err = capsys.readouterr().err
    assert "the change set:" in err and "AWS::ECS::Cluster" in err
    assert "run again with --yes" in err
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.list_change_sets(StackName=project)["Summaries"] == []
    assert boto3.client("ecs", region_name=REGION).describe_clusters(clusters=[project])["clusters"] == []
    assert bootstrap(repo, stack_env, "--no-stack", "--stack") == 2
    assert "--no-stack is infrastructure of your own" in capsys.readouterr().err


def test_bootstrap_stack_names_what_it_needs(repo, stack_env, capsys):
    project, pool = unique("fs"), unique("ecs-pool")
    account = stack_account()
    stack_repo(repo, project, pool, account)
    env = {k: v for k, v in stack_env.items() if k != "GITHUB_REPOSITORY"}
    assert bootstrap_stack(repo, env, account, "--yes") == 2
    assert "the stack needs GitHubRepository" in capsys.readouterr().err
    assert bootstrap_stack(repo, stack_env, account, "--parameter", "Nope=1") == 2
    assert "Nope is not a parameter of the stack" in capsys.readouterr().err


def test_bootstrap_stack_without_permission_says_which_in_one_sentence(repo, tmp_path, monkeypatch, capsys):
    """moto enforcing IAM (after the setup's first requests): a principal that may read but not create stacks."""
    from testing import moto_cfn

    setup = 5  # the requests below before the principal's own: VPC, subnet, user, key, policy
    server = moto_cfn.start(tmp_path / "moto-iam", {"INITIAL_NO_AUTH_ACTION_COUNT": str(setup)})
    try:
        ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=server.url)
        vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
        iam = boto3.client("iam", region_name=REGION, endpoint_url=server.url)
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "cloudformation:DescribeStacks"], "Resource": "*"}],
        }))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        # boto3's default session keeps the credentials it first found: a fresh one reads these.
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        project, pool = unique("fs"), unique("ecs-pool")
        stack_repo(repo, project, pool, {"subnet": subnet, "secret": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:k"})
        env = {"PREFECT_API_URL": "http://127.0.0.1:9/api", "AWS_ENDPOINT_URL": server.url,
               "GITHUB_REPOSITORY": "octo/flows"}
        assert bootstrap(repo, env, "--stack", "--yes") == 1
        err = capsys.readouterr().err
        assert "AWS denied cloudformation:CreateChangeSet: the principal running bootstrap needs " \
               "cloudformation:CreateChangeSet (docs/ecs.md lists the bootstrap principal's permissions)." in err, err
        assert "Traceback" not in err
    finally:
        server.stop()


def test_a_stack_that_fails_prints_its_failed_resources(repo, stack_env, capsys):
    project, pool = unique("fs"), unique("ecs-pool")
    account = stack_account()
    stack_repo(repo, project, pool, account)
    # ECR refuses the name when the stack creates the repository: the stack fails part way.
    bad = "Not_A/Valid__Name!"
    assert bootstrap_stack(repo, stack_env, account, "--yes", "--parameter", f"RepositoryName={bad}") == 1
    err = capsys.readouterr().err
    # The failed resource's event, with CloudFormation's reason, then one sentence.
    failed = [line for line in err.splitlines() if "CREATE_FAILED" in line and "AWS::ECR::Repository" in line]
    assert failed and "repositoryName" in failed[0] and "failed to satisfy constraint" in failed[0], err
    assert f"the stack {project} did not deploy; the failed resources are above." in err
    assert "Traceback" not in err
    # What is left is a stack to delete first, and bootstrap says so.
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.describe_stacks(StackName=project)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    assert bootstrap_stack(repo, stack_env, account, "--yes") == 1
    assert f"the stack {project} is ROLLBACK_COMPLETE after a failed first deploy; delete it" in capsys.readouterr().err

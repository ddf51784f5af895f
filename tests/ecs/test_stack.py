"""flowship's CloudFormation stack as data: what moto's CloudFormation cannot deploy
(capacity providers, their cluster association, the OIDC provider, the secret) and
what IAM would decide (trust conditions, the preview role's limits) is checked on
the rendered template itself, evaluated for concrete parameter values."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from flowship.config import load_config, parse_config
from flowship.ecs import settings, stack
from flowship.ecs.bootstrap import LIFECYCLE_POLICY
from flowship.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "us-east-1"
PARAMS = {"GitHubRepository": "octo/flows", "DefaultBranch": "main", "ProductionEnvironment": "",
          "PreviewEnvironment": "", "GitHubOidcProviderArn": "", "PrefectApiKeySecretArn": ""}


def rendered(config=None) -> dict:
    return cfn_yaml.loads(stack.render(config or load_config(ROOT, {})))


def resolve(node, template: dict, params: dict[str, str]):
    """Fn::If / Fn::Sub / Ref / Fn::Equals / Fn::Not, as CloudFormation would with these parameters."""
    values = {name: spec.get("Default", "") for name, spec in template["Parameters"].items()}
    values |= params | {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}

    def condition(name: str) -> bool:
        return bool(go(template["Conditions"][name]))

    def go(n):
        if isinstance(n, list):
            return [go(x) for x in n]
        if not isinstance(n, dict):
            return n
        if set(n) == {"Fn::If"}:
            name, yes, no = n["Fn::If"]
            return go(yes if condition(name) else no)
        if set(n) == {"Fn::Equals"}:
            a, b = go(n["Fn::Equals"])
            return str(a) == str(b)
        if set(n) == {"Fn::Not"}:
            return not go(n["Fn::Not"][0])
        if set(n) == {"Ref"}:
            ref = n["Ref"]
            return values[ref] if ref in values else f"<{ref}>"
        if set(n) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(values.get(m.group(1), f"<{m.group(1)}>")), n["Fn::Sub"])
        if set(n) == {"Fn::GetAtt"}:
            return f"<{'.'.join(n['Fn::GetAtt'])}>"
        return {k: go(v) for k, v in n.items()}

    return go(node)


def allowed(policy: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM's evaluation for one request: an explicit Deny wins, else some Allow must match."""
    def matches(statement: dict) -> bool:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            return False
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return False
        for op, pairs in statement.get("Condition", {}).items():
            assert op == "StringEquals", op
            if any(context.get(k) != v for k, v in pairs.items()):
                return False
        return True

    statements = policy["Statement"]
    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def role(template: dict, name: str, params: dict[str, str]) -> tuple[dict, dict]:
    props = resolve(template["Resources"][name]["Properties"], template, params)
    return props["AssumeRolePolicyDocument"], props["Policies"][0]["PolicyDocument"]


def test_the_deploy_role_trusts_only_the_repositorys_default_branch():
    template = rendered()
    trust, _ = role(template, "DeployRole", PARAMS)
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "<GitHubOidcProvider>"}
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": ["repo:octo/flows:ref:refs/heads/main"],
    }
    # With an environment (and an existing OIDC provider), that environment's jobs too, and nothing else.
    existing = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    trust, _ = role(template, "DeployRole", PARAMS | {"ProductionEnvironment": "production",
                                                      "GitHubOidcProviderArn": existing, "DefaultBranch": "trunk"})
    assert trust["Statement"][0]["Principal"] == {"Federated": existing}
    assert trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        "repo:octo/flows:ref:refs/heads/trunk", "repo:octo/flows:environment:production",
    ]
    # The OIDC provider is created only when none is given.
    assert template["Resources"]["GitHubOidcProvider"]["Condition"] == "CreateOidcProvider"
    assert resolve(template["Conditions"]["CreateOidcProvider"], template, PARAMS | {"GitHubOidcProviderArn": existing}) is False


def test_the_preview_role_cannot_touch_scope_mains_task_definitions():
    template = rendered()
    trust, preview = role(template, "PreviewRole", PARAMS)
    assert trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        "repo:octo/flows:pull_request"
    ]
    _, deploy = role(template, "DeployRole", PARAMS)
    prefix = stack.family_prefix(load_config(ROOT, {}))
    revision = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{prefix}-train--%s:7"
    on_create = {"ecs:CreateAction": "RegisterTaskDefinition"}
    preview_tags = {"aws:RequestTag/flowship": "true", "aws:RequestTag/flowship:scope": "preview"}
    main_tags = {"aws:RequestTag/flowship": "true", "aws:RequestTag/flowship:scope": "main"}

    # A preview registers (and, on create, tags) its own family's revisions...
    assert allowed(preview, "ecs:RegisterTaskDefinition", "*", preview_tags)
    assert allowed(preview, "ecs:TagResource", revision % "feature-x", on_create)
    assert allowed(preview, "ecs:DeregisterTaskDefinition", revision % "feature-x", {})
    # ...but never a `--main` family's: tagging on register is authorized on the new revision's ARN.
    assert not allowed(preview, "ecs:TagResource", revision % "main", on_create)
    assert not allowed(preview, "ecs:RegisterTaskDefinition", "*", main_tags)
    assert not allowed(preview, "ecs:RegisterTaskDefinition", "*", {})
    assert not allowed(preview, "ecs:DeregisterTaskDefinition", revision % "main", {})
    assert not allowed(preview, "ecs:UntagResource", revision % "main", {})
    # The production role can do both; neither can tag another project's families.
    assert allowed(deploy, "ecs:RegisterTaskDefinition", "*", main_tags)
    assert allowed(deploy, "ecs:TagResource", revision % "main", on_create)
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/other-train--main:1"
    assert not allowed(deploy, "ecs:TagResource", other, on_create)
    assert not allowed(preview, "ecs:TagResource", other, on_create)
    # Both pass exactly the two task roles, only to ECS tasks.
    for policy in (deploy, preview):
        ecs_tasks = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        assert allowed(policy, "iam:PassRole", "<ExecutionRole.Arn>", ecs_tasks)
        assert not allowed(policy, "iam:PassRole", "<WorkerRole.Arn>", ecs_tasks)
        assert not allowed(policy, "iam:PassRole", "<TaskRole.Arn>", {"iam:PassedToService": "ec2.amazonaws.com"})


def test_each_gpu_capacity_is_a_launch_template_an_asg_from_zero_and_a_managed_capacity_provider():
    config = load_config(ROOT, {})
    template = rendered(config)
    resources = template["Resources"]
    assert template["Parameters"]["GpuAmi"]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert template["Parameters"]["GpuAmi"]["Default"].startswith("/aws/service/ecs/optimized-ami/")
    assert "/gpu/" in template["Parameters"]["GpuAmi"]["Default"]
    names = []
    for capacity in config.aws.gpu_capacity:
        cid = stack.logical_id(capacity.name)
        data = resources[f"{cid}LaunchTemplate"]["Properties"]["LaunchTemplateData"]
        assert data["ImageId"] == {"Ref": "GpuAmi"}
        assert template["Parameters"][f"{cid}InstanceType"]["Default"] == capacity.instance_type
        assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == capacity.disk
        assert "ECS_ENABLE_GPU_SUPPORT=true" in data["UserData"]["Fn::Base64"]["Fn::Sub"]
        group = resources[f"{cid}AutoScalingGroup"]["Properties"]
        assert template["Parameters"][f"{cid}MinSize"]["Default"] == 0
        assert group["NewInstancesProtectedFromScaleIn"] is True
        distribution = group["MixedInstancesPolicy"]["InstancesDistribution"]
        for spot, on_demand in (("false", 100), ("true", 0)):
            assert resolve(distribution, template, {f"{cid}Spot": spot})["OnDemandPercentageAboveBaseCapacity"] == on_demand
        provider = resources[f"{cid}CapacityProvider"]["Properties"]
        assert provider["Name"] == capacity.name
        asg = provider["AutoScalingGroupProvider"]
        assert asg["ManagedScaling"]["Status"] == "ENABLED"
        assert asg["ManagedTerminationProtection"] == "ENABLED"
        names.append({"Ref": f"{cid}CapacityProvider"})
    association = resources["ClusterCapacityProviders"]["Properties"]
    assert association["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT", *names]
    assert len(names) == 2


def test_the_repository_log_group_secret_and_worker():
    config = load_config(ROOT, {})
    template = rendered(config)
    resources = template["Resources"]
    repo = resources["Repository"]["Properties"]
    assert repo["ImageTagMutability"] == "IMMUTABLE" and repo["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert json.loads(repo["LifecyclePolicy"]["LifecyclePolicyText"]) == LIFECYCLE_POLICY
    assert resources["PrefectApiKeySecret"]["Condition"] == "CreateSecret"
    assert "SecretString" not in resources["PrefectApiKeySecret"]["Properties"]  # a value is the team's
    worker = resolve(resources["WorkerTaskDefinition"]["Properties"], template, PARAMS)
    [container] = worker["ContainerDefinitions"]
    assert container["Command"] == ["prefect", "worker", "start", "--pool", config.ecs_pool, "--type", "ecs"]
    assert container["Image"] == f"prefecthq/prefect:{stack.WORKER_PREFECT_VERSION}-python3.12"
    assert {"Name": "EXTRA_PIP_PACKAGES", "Value": f"prefect-aws=={stack.WORKER_PREFECT_AWS_VERSION}"} in container["Environment"]
    assert container["Secrets"] == [{"Name": "PREFECT_API_KEY", "ValueFrom": "<PrefectApiKeySecret>"}]
    assert not any(e["Name"] == "PREFECT_API_KEY" for e in container["Environment"])
    assert worker["RequiresCompatibilities"] == ["FARGATE"]
    assert resources["WorkerService"]["Properties"]["LaunchType"] == "FARGATE"
    _, policy = role(template, "WorkerRole", PARAMS)
    prefix = stack.family_prefix(config)
    assert allowed(policy, "ecs:RunTask", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{prefix}-train--main:3", {})
    assert not allowed(policy, "ecs:RunTask", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/other:3", {})


def test_the_outputs_cover_every_key_bootstrap_writes():
    template = rendered()
    outputs = set(template["Outputs"])
    sources = {"region": "Region", "cluster": "Cluster", "execution-role-arn": "ExecutionRoleArn",
               "task-role-arn": "TaskRoleArn", "log-group": "LogGroup", "subnets": "Subnets",
               "security-groups": "SecurityGroups", "assign-public-ip": "AssignPublicIp",
               "prefect-api-key-secret-arn": "PrefectApiKeySecretArn"}
    assert set(sources.values()) <= outputs
    out = {name: f"value-{name}" for name in outputs} | {"Subnets": "subnet-1,subnet-2", "AssignPublicIp": "ENABLED"}
    config = stack.outputs_config(load_config(ROOT, {}), out)
    assert set(settings.aws_values(config)) == set(sources)
    assert config.aws.subnets == ("subnet-1", "subnet-2") and config.aws.assign_public_ip is True
    assert config.aws.execution_role_arn == "value-ExecutionRoleArn"
    assert {"EcrRepository", "WorkPool", "DeployRoleArn", "PreviewRoleArn", "GitHubRepository"} <= outputs


def test_capacity_names_that_collide_as_logical_ids_are_refused(tmp_path):
    text = (ROOT / "pyproject.toml").read_text().replace('name = "gpu-g5-12xlarge"', 'name = "gpu-g5.xlarge"')
    config = parse_config(text, root=tmp_path, env={})
    with pytest.raises(InputError, match="differ only in punctuation"):
        stack.render(config)


def test_write_sets_the_stack_keys_and_keeps_the_rest(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.flowship]\nproject = "octo/flows"\n\n'
        '[tool.flowship.aws]\nregion = "eu-west-1"  # ours\nsubnets = [\n  "subnet-old",\n]\n'
        'cluster = "old"\n\n[[tool.flowship.aws.gpu-capacity]]\nname = "gpu-a"\ninstance-type = "g5.xlarge"\n'
        'gpus = 1\nvcpus = 4\nmemory = 16384\ndisk = 250\n'
    )
    before = load_config(tmp_path, {})
    out = {"Region": "us-east-1", "Cluster": "fs", "ExecutionRoleArn": "arn:aws:iam::1:role/e",
           "TaskRoleArn": "arn:aws:iam::1:role/t", "LogGroup": "/fs", "Subnets": "subnet-a,subnet-b",
           "SecurityGroups": "sg-1", "AssignPublicIp": "DISABLED", "EcrRepository": "fs",
           "PrefectApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:k"}
    settings.write(stack.outputs_config(before, out))
    after = load_config(tmp_path, {})
    assert after.aws.region == "us-east-1" and after.aws.cluster == "fs"
    assert after.aws.subnets == ("subnet-a", "subnet-b") and after.aws.security_groups == ("sg-1",)
    assert after.aws.prefect_api_key_secret_arn.endswith(":secret:k")
    assert after.ecr_repository == "fs" and after.project == "octo/flows"
    assert after.aws.gpu_capacity == before.aws.gpu_capacity
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "x"\n') and "subnet-old" not in text
    # Writing the same again changes nothing.
    settings.write(stack.outputs_config(after, out))
    assert (tmp_path / "pyproject.toml").read_text() == text


def test_the_linters_bite_on_the_template(tmp_path):
    """scripts/lint.sh passes on the template (tests/test_lint.py); here the same linters fail a broken one."""
    import subprocess
    import sys

    text = stack.render(load_config(ROOT, {}))
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(text.replace("ImageTagMutability: IMMUTABLE", "ImageTagMutability: SOMETIMES"))
    proc = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(invalid)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "SOMETIMES" in proc.stdout, proc.stdout
    checkov = ROOT / ".tools/checkov/bin/checkov"
    if not checkov.exists():
        from testing.servers import require_or_skip

        require_or_skip("checkov is not installed (scripts/setup.sh installs it into .tools/checkov)")
    # Without its justified skip, the repository's encryption check fails.
    unjustified = tmp_path / "unjustified.yaml"
    unjustified.write_text(text.replace("          - id: CKV_AWS_136\n", "          - id: CKV_AWS_000\n"))
    proc = subprocess.run([str(checkov), "--quiet", "--compact", "--skip-download", "--framework", "cloudformation",
                           "-f", str(unjustified)], capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0 and "CKV_AWS_136" in proc.stdout, proc.stdout

"""moto in server mode with two fixes to its CloudFormation, and the fixtures that start it.

moto 5.2.5 executes a change set without rebuilding the stack's outputs (it
builds them only in create_stack/update_stack) and without keeping the new
parameters, so a stack made through a change set, the way CloudFormation is
meant to be driven and the way flowship does it, has no outputs and every
rerun looks changed. And when a resource fails to create, moto fails the
ExecuteChangeSet call itself (its own TODO: "handle execution errors and
implement rollback"), where CloudFormation accepts the call and the stack
then fails: a `CREATE_FAILED` event for the resource with its reason, and the
stack `ROLLBACK_COMPLETE` (`UPDATE_ROLLBACK_COMPLETE` for an update), which a
waiter reports. `execute_change_set` below finishes what moto's does in both
respects; everything else is moto's own. Run as `python -m testing.moto_cfn -H HOST -p PORT`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from testing.servers import Server, free_port, wait_http


def _patch() -> None:
    from moto.cloudformation import parsing
    from moto.cloudformation.models import CloudFormationBackend, Event

    execute = CloudFormationBackend.execute_change_set
    create = parsing.parse_and_create_resource
    creating: list[tuple[str, str]] = []  # the resource being created, for its CREATE_FAILED event

    def parse_and_create_resource(logical_id, resource_json, *args, **kwargs):  # type: ignore[no-untyped-def]
        creating.append((logical_id, resource_json.get("Type", "")))
        resource = create(logical_id, resource_json, *args, **kwargs)
        creating.pop()
        return resource

    parsing.parse_and_create_resource = parse_and_create_resource

    def execute_change_set(self, change_set_name, stack_name=None):  # type: ignore[no-untyped-def]
        creating.clear()
        try:
            execute(self, change_set_name, stack_name)
        except Exception as exc:
            change_set = self.describe_change_set(change_set_name)
            stack = self.stacks[change_set.stack_id]
            reason = getattr(exc, "message", None) or str(exc)
            if creating:
                logical_id, kind = creating[-1]
                stack.events.append(Event(
                    stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
                    physical_resource_id="", resource_type=kind, resource_status="CREATE_FAILED",
                    resource_status_reason=reason, resource_properties=None))
            kind = change_set.change_set_type
            rolled_back = "ROLLBACK_COMPLETE" if kind == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            stack._add_stack_event(f"{kind}_FAILED" if kind == "CREATE" else "UPDATE_ROLLBACK_IN_PROGRESS",
                                   resource_status_reason="The following resource(s) failed to create.")
            stack._add_stack_event(rolled_back)
            stack.status = rolled_back
            change_set.execution_status = "EXECUTE_FAILED"
            return
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack.parameters = change_set.parameters
        stack._parse_template()
        stack.output_map = stack._create_output_map()

    CloudFormationBackend.execute_change_set = execute_change_set


def start(workdir: Path, env: dict[str, str] | None = None) -> Server:
    """`env` adds to the server's environment, e.g. INITIAL_NO_AUTH_ACTION_COUNT (moto then enforces IAM)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "moto.log"
    env = os.environ.copy() | (env or {}) | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "testing.moto_cfn", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_http(f"{url}/moto-api/", 30, proc):
        proc.kill()
        raise RuntimeError(f"moto server did not start:\n{log.read_text()[-3000:]}")
    return Server(proc, url, log)


@pytest.fixture(scope="session")
def cfn_moto_server(tmp_path_factory):
    server = start(tmp_path_factory.mktemp("moto-cfn"))
    yield server
    server.stop()


@pytest.fixture
def cfn_aws(cfn_moto_server, monkeypatch) -> str:
    """AWS_ENDPOINT_URL pointed at a fresh state of the CloudFormation-fixed moto server."""
    urllib.request.urlopen(urllib.request.Request(f"{cfn_moto_server.url}/moto-api/reset", method="POST")).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", cfn_moto_server.url)
    return cfn_moto_server.url


def stack_account() -> dict[str, str]:
    """What moto's CloudFormation cannot create (the OIDC provider, the secret), made by API, and a network."""
    import boto3

    from testing.ecs import REGION
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    oidc = boto3.client("iam", region_name=REGION).create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["0" * 40],
    )["OpenIDConnectProviderArn"]
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="flowship/prefect-api-key", SecretString="pnu_test")["ARN"]
    return {"vpc": vpc, "subnet": subnet, "oidc": oidc, "secret": secret}


def stack_repo(repo, project: str, pool: str, account: dict[str, str]) -> None:
    from testing.ecs import pyproject

    text = pyproject(None, project=project, pool=pool, extra=f'subnets = ["{account["subnet"]}"]\n'
                     f'prefect-api-key-secret-arn = "{account["secret"]}"\n')
    repo.commit({"pyproject.toml": text})


if __name__ == "__main__":
    _patch()
    from moto.server import main

    main(sys.argv[1:])

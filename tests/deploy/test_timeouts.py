"""`Workflow(timeout_seconds=...)`: a Prefect automation per deployment cancels a run that runs too long.

Against the session's real Prefect server: the automations converge with the
deployments, and a real process worker's run of a 60 s flow is cancelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from flowship.deploy import LocalTarget, cleanup_branch, deploy_plan
from flowship.scope import Scope, branch_slug
from flowship.workflow import AwsEcsMachine, Workflow

from testing.deployments import FlowRepo, counting_client, read_back, uid

pytestmark = pytest.mark.integration

CPU = AwsEcsMachine(cpu_value=256, memory_value=512)

SLEEPER = '''
import time

from prefect import flow

from flowship import AwsEcsMachine, Workflow

workflow = Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512), timeout_seconds=3)


@flow(name="{name}")
def {function}(seconds: int = 60) -> str:
    time.sleep(seconds)
    return "slept"
'''


@pytest.fixture
def flows(repo, prefect_api) -> FlowRepo:
    return FlowRepo.create(repo, prefect_api)


def automations(api: str, deployments: list[str]) -> dict[str, dict[str, Any]]:
    """The server's automations named for these deployments, raw JSON, by deployment."""
    names = [f"flowship-timeout:{d}" for d in deployments]
    request = urllib.request.Request(
        f"{api}/automations/filter", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"automations": {"name": {"any_": names}}}).encode(),
    )
    with urllib.request.urlopen(request) as resp:
        found = json.loads(resp.read())
    return {a["name"].removeprefix("flowship-timeout:"): a for a in found}


def test_a_timeout_is_an_automation_that_converges(flows):
    etl, plain = f"etl-{uid()}", f"plain-{uid()}"
    flows.write_flow(etl, Workflow(machine=CPU, timeout_seconds=90))
    flows.write_flow(plain, Workflow(machine=CPU))
    config = flows.config
    head = flows.repo.commit(message="flows")
    plan = flows.plan(Scope.main(), head, [etl, plain])

    assert sorted(deploy_plan(config, plan, LocalTarget(config)).created) == sorted([f"{etl}/main", f"{plain}/main"])
    deployment = read_back(flows.api, [etl])[f"{etl}/main"]
    found = automations(flows.api, [f"{etl}/main", f"{plain}/main"])
    assert list(found) == [f"{etl}/main"]  # none for a workflow without a timeout
    a = found[f"{etl}/main"]
    assert a["enabled"] and {"flowship", "flowship-timeout", "scope:main", "branch:main"} <= set(a["tags"])
    t = a["trigger"]
    assert t["posture"] == "Proactive" and t["within"] == 90 and t["for_each"] == ["prefect.resource.id"]
    assert t["match_related"]["prefect.resource.id"] == f"prefect.deployment.{deployment['id']}"
    assert "prefect.flow-run.Running" in t["after"] and "prefect.flow-run.Completed" in t["expect"]
    assert [x["type"] for x in a["actions"]] == ["cancel-flow-run"]

    with counting_client(config) as (client, writes):
        again = deploy_plan(config, plan, LocalTarget(config), client=client)
    assert sorted(again.unchanged) == sorted([f"{etl}/main", f"{plain}/main"]) and writes == []

    # A changed timeout updates the same automation, and only it.
    flows.declarations[etl] = Workflow(machine=CPU, timeout_seconds=120)
    plan = flows.plan(Scope.main(), head, [etl, plain])
    with counting_client(config) as (client, writes):
        changed = deploy_plan(config, plan, LocalTarget(config), client=client)
    assert changed.updated == [f"{etl}/main"] and changed.outcomes[0].detail == "timeout"
    assert writes == [f"PUT /api/automations/{a['id']}"]
    after = automations(flows.api, [f"{etl}/main"])[f"{etl}/main"]
    assert after["id"] == a["id"] and after["trigger"]["within"] == 120

    # A paused automation stays paused: `enabled` is the person's.
    urllib.request.urlopen(urllib.request.Request(
        f"{flows.api}/automations/{a['id']}", method="PATCH", data=b'{"enabled": false}',
        headers={"content-type": "application/json"})).close()
    assert deploy_plan(config, plan, LocalTarget(config)).unchanged == [f"{etl}/main", f"{plain}/main"]

    # A timeout added to one, removed from the other.
    flows.declarations[etl] = Workflow(machine=CPU)
    flows.declarations[plain] = Workflow(machine=CPU, timeout_seconds=3)  # under Prefect's 10 s floor
    plan = flows.plan(Scope.main(), head, [etl, plain])
    result = deploy_plan(config, plan, LocalTarget(config))
    assert {o.deployment: o.detail for o in result.outcomes} == {
        f"{etl}/main": "timeout removed", f"{plain}/main": "timeout added"}
    found = automations(flows.api, [f"{etl}/main", f"{plain}/main"])
    assert list(found) == [f"{plain}/main"] and found[f"{plain}/main"]["trigger"]["within"] == 10

    # A deleted flow takes its automation along.
    gone = flows.repo.commit({f"flows/{plain.replace('-', '_')}.py": None}, message="drop plain")
    assert deploy_plan(config, flows.plan(Scope.main(), gone, [], delete=[plain]), LocalTarget(config)).deleted == [f"{plain}/main"]
    assert automations(flows.api, [f"{etl}/main", f"{plain}/main"]) == {}


def test_cleanup_removes_the_previews_automations_and_never_mains(flows):
    etl = f"etl-{uid()}"
    flows.write_flow(etl, Workflow(machine=CPU, timeout_seconds=60))
    config = flows.config
    head = flows.repo.commit(message="flows")
    branch, other = f"feature/t-{uid()}", f"feature/u-{uid()}"
    for scope in (Scope.main(), Scope.preview(branch, pr=3), Scope.preview(other)):
        assert deploy_plan(config, flows.plan(scope, head, [etl]), LocalTarget(config)).ok
    names = [f"{etl}/main", f"{etl}/{branch_slug(branch)}", f"{etl}/{branch_slug(other)}"]
    before = automations(flows.api, names)
    assert set(before) == set(names)
    preview = before[names[1]]
    assert {"scope:preview", f"branch:{branch_slug(branch)}"} <= set(preview["tags"])

    cleaned = cleanup_branch(config, branch, LocalTarget(config))

    assert cleaned.ok and cleaned.deleted == [names[1]]
    after = automations(flows.api, names)
    assert set(after) == {names[0], names[2]}
    assert after[names[0]] == before[names[0]]  # main's, exactly as it was


@pytest.mark.slow
def test_a_run_longer_than_its_timeout_is_cancelled(flows, tmp_path, drain_prefect):
    name = f"sleeper-{uid()}"
    function = name.replace("-", "_")
    flows.repo.write({f"flows/{function}.py": SLEEPER.format(name=name, function=function)})
    flows.declarations[name] = Workflow(machine=CPU, timeout_seconds=3)
    head = flows.repo.commit(message="a slow flow")
    config = flows.config
    assert deploy_plan(config, flows.plan(Scope.main(), head, [name]), LocalTarget(config)).ok

    env = os.environ | {"PREFECT_API_URL": flows.api, "PREFECT_WORKER_QUERY_SECONDS": "1",
                        "PREFECT_HOME": str(tmp_path / "prefect-home")}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", flows.pool, "--type", "process"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    from flowship.deploy.client import open_client

    seen: list[str] = []
    try:
        with open_client(config) as client:
            deployment = client.read_deployment_by_name(f"{name}/main")
            run = client.create_flow_run_from_deployment(deployment.id)
            deadline = time.monotonic() + 50  # start-up + the 10 s window + Prefect's 5 s evaluation period
            while time.monotonic() < deadline:
                state = client.read_flow_run(run.id).state
                if not seen or seen[-1] != state.name:
                    seen.append(state.name)
                if state.name in ("Cancelled", "Completed", "Failed", "Crashed"):
                    break
                time.sleep(0.5)
            if seen[-1] == "Cancelling":  # the worker is stopping the process; give it a moment
                for _ in range(20):
                    if (state := client.read_flow_run(run.id).state).name != "Cancelling":
                        seen.append(state.name)
                        break
                    time.sleep(0.5)
            took = (client.read_flow_run(run.id).state.timestamp - run.created).total_seconds()
    finally:
        worker.terminate()
        worker.wait(30)
    worker_log = (tmp_path / "worker.log").read_text()[-3000:]
    assert "Running" in seen, (seen, worker_log)
    assert seen[-1] in ("Cancelled", "Cancelling"), (seen, worker_log)
    assert took < 45, (took, seen)  # far sooner than the flow's 60 s sleep

"""Drift: a deployment edited through the Prefect API is reported with its field diff; the next
deploy puts git's values back, except a person's pause (of the deployment or of one schedule)."""

from __future__ import annotations

import json

import pytest

from flowship.cli import main
from flowship.config import load_config
from flowship.commands.drift import drift
from flowship.deploy import LocalTarget, deploy_plan
from flowship.deploy.client import open_client
from flowship.deploy.drift import lines, markdown
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow

from testing.deployments import FlowRepo, read_back, uid

pytestmark = pytest.mark.integration

CPU = AwsEcsMachine(cpu_value=256, memory_value=512)
DECLARATION = ('machine=AwsEcsMachine(cpu_value=256, memory_value=512), schedules=[3600, 7200], '
               'description="nightly", parameters={"x": 5}, tags=["etl"]')


@pytest.fixture
def flows(repo, prefect_api) -> FlowRepo:
    return FlowRepo.create(repo, prefect_api)


def edit_by_hand(config, name: str) -> None:
    """What a person does in the Prefect UI: edit fields, pause one schedule, pause the deployment."""
    from prefect.client.schemas.actions import DeploymentUpdate

    with open_client(config) as client:
        deployment = client.read_deployment_by_name(f"{name}/main")
        client.update_deployment(deployment.id, DeploymentUpdate(
            description="edited in the UI", parameters={"x": 7}, tags=[*deployment.tags, "hand"]))
        two_hours = next(s for s in deployment.schedules if s.schedule.interval.total_seconds() == 7200)
        client.update_deployment_schedule(deployment.id, two_hours.id, active=False)
        client.pause_deployment(deployment.id)


def schedules(deployment: dict) -> list[tuple[float, bool]]:
    return sorted((s["schedule"]["interval"], s["active"]) for s in deployment["schedules"])


def test_an_edit_in_prefect_is_reported_and_the_next_deploy_keeps_only_the_pauses(flows, capsys):
    name = f"etl-{uid()}"
    flows.write_flow(name, Workflow(machine=CPU, schedules=[3600, 7200], description="nightly", parameters={"x": 5},
                                    tags=["etl"]), declaration=DECLARATION)
    head = flows.repo.commit(message="etl")
    config = flows.config
    plan = flows.plan(Scope.main(), head, [name])
    assert deploy_plan(config, plan, LocalTarget(config)).created == [f"{name}/main"]

    clean = drift(config, Scope.main(), LocalTarget(config))
    assert (clean.checked, clean.drifted, clean.kept, clean.unchecked) == (1, [], {}, {})
    assert "All 1 deployment(s) match" in markdown(clean)

    edit_by_hand(config, name)
    found = drift(config, Scope.main(), LocalTarget(config))
    assert [d.deployment for d in found.drifted] == [f"{name}/main"]
    changes = {c.field: (c.old, c.new) for c in found.drifted[0].changes}
    assert found.drifted[0].commit == head
    assert set(changes) == {"description", "parameters", "tags"}  # the paused schedule is not drift
    assert changes["description"][0] == "edited in the UI" and changes["description"][1].startswith("nightly")
    assert changes["parameters"] == ({"x": 7}, {"x": 5})
    assert "hand" in changes["tags"][0] and "hand" not in changes["tags"][1]
    assert found.kept == {f"{name}/main": ["the deployment", "every 2 h"]}
    text = "\n".join(lines(found))
    assert f'drifted   {name}/main (at {head[:12]}): description: "edited in the UI" (git: "nightly' in text
    assert f"kept      {name}/main: paused by a person: the deployment, every 2 h" in text
    summary = markdown(found)
    assert "edited in the UI" in summary and "| description |" in summary and "paused by a person, kept" in summary

    # The command reads the same, as JSON on stdout, and writes nothing.
    before = read_back(flows.api, [name])
    code = main(["drift", "--root", str(flows.repo.path), "--json"], {"PREFECT_API_URL": flows.api})
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["checked"] == 1 and out["kept"] == found.kept
    assert {c["field"]: c["git"] for c in out["drifted"][0]["changes"]}["parameters"] == {"x": 5}
    assert read_back(flows.api, [name]) == before

    # Convergence: the next deploy of it writes git's values back; the person's pauses stay.
    again = deploy_plan(config, plan, LocalTarget(config))
    assert again.updated == [f"{name}/main"]
    assert set(again.outcomes[0].detail.split(", ")) == {"description", "parameters", "tags"}
    after = read_back(flows.api, [name])[f"{name}/main"]
    assert after["description"] == changes["description"][1] and after["parameters"] == {"x": 5}
    assert "hand" not in after["tags"]
    assert after["paused"] is True
    assert schedules(after) == [(3600.0, True), (7200.0, False)]
    settled = drift(config, Scope.main(), LocalTarget(config))
    assert settled.drifted == [] and settled.kept == found.kept
    # And the rerun after that writes nothing.
    assert deploy_plan(config, plan, LocalTarget(config)).unchanged == [f"{name}/main"]


def test_a_schedule_git_changes_starts_as_git_says_and_a_preview_stays_paused(flows):
    name = f"etl-{uid()}"
    flows.write_flow(name, Workflow(machine=CPU, schedules=[3600, 7200]),
                     declaration="machine=AwsEcsMachine(cpu_value=256, memory_value=512), schedules=[3600, 7200]")
    first = flows.repo.commit(message="etl")
    config = flows.config
    deploy_plan(config, flows.plan(Scope.main(), first, [name]), LocalTarget(config))
    edit_by_hand(config, name)

    # The paused 2 h schedule becomes 3 h in git: a new schedule, active as declared on main.
    flows.write_flow(name, Workflow(machine=CPU, schedules=[3600, 10800]),
                     declaration="machine=AwsEcsMachine(cpu_value=256, memory_value=512), schedules=[3600, 10800]")
    second = flows.repo.commit(message="every 3 h")
    deploy_plan(config, flows.plan(Scope.main(), second, [name]), LocalTarget(config))
    assert schedules(read_back(flows.api, [name])[f"{name}/main"]) == [(3600.0, True), (10800.0, True)]
    assert drift(config, Scope.main(), LocalTarget(config)).drifted == []


def test_main_deploys_in_ci_list_what_drifted_in_the_summary(repo, tmp_path, prefect_api, capsys):
    """`flowship ci` on a push to main: a deployment edited by hand that this push does not touch
    is listed in the job summary as drifted, with the field diff."""
    from test_ci import Ci

    from testing.ci import REPO_NAME, ZERO, push_payload
    from testing.git import cpu_flow
    from testing.github_server import GitHubServer

    with GitHubServer() as github:
        github.add_repo(REPO_NAME)
        ci = Ci(repo, tmp_path, prefect_api, github)
        other = f"other_{ci.suffix}"
        first = ci.seed()
        first = ci.repo.commit({f"flows/{other}.py": cpu_flow(other)}, message="a second flow")
        code, err = ci("push", push_payload(before=ZERO, after=first), capsys)
        assert code == 0, err
        from prefect.client.schemas.actions import DeploymentUpdate

        config = load_config(repo.path, {"PREFECT_API_URL": prefect_api})
        with open_client(config) as client:
            edited = client.read_deployment_by_name(f"{other.replace('_', '-')}/main")
            client.update_deployment(edited.id, DeploymentUpdate(description="edited in the UI"))
        second = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow).replace("rows: int = 10", "rows: int = 12")})
        code, err = ci("push", push_payload(before=first, after=second), capsys)
    assert code == 0, err
    summary = ci.summary.read_text()
    from flowship.markdown import escape

    drifted = next(line for line in summary.splitlines() if line.startswith("> Drifted from git"))
    assert escape(f"{other.replace('_', '-')}/main") in drifted and "edited in the UI" in drifted

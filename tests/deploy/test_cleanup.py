"""Previews: deployed beside main, paused schedules, removed by cleanup without touching main."""

from __future__ import annotations

import pytest

from flowship.cli import main
from flowship.deploy import LocalTarget, cleanup_branch, deploy_plan, read_last_deployed
from flowship.errors import InputError
from flowship.scope import Scope, branch_slug
from flowship.workflow import AwsEcsMachine, Workflow

from testing.deployments import FlowRepo, read_back, uid

pytestmark = pytest.mark.integration

CPU = AwsEcsMachine(cpu_value=256, memory_value=512)


@pytest.fixture
def flows(repo, prefect_api) -> FlowRepo:
    return FlowRepo.create(repo, prefect_api)


def test_a_preview_and_its_cleanup_leave_main_exactly_as_it_was(flows):
    etl, train = f"etl-{uid()}", f"train-{uid()}"
    flows.write_flow(etl, Workflow(machine=CPU, schedules=["*/5 * * * *"]))
    flows.write_flow(train, Workflow(machine=CPU))
    config = flows.config
    on_main = flows.repo.commit(message="flows")
    deploy_plan(config, flows.plan(Scope.main(), on_main, [etl, train]), LocalTarget(config))
    main_before = read_back(flows.api, [etl, train])

    branch, other = f"feature/Preview_{uid()}", f"feature/other-{uid()}"
    flows.repo.git("checkout", "-q", "-b", branch)
    on_branch = flows.repo.commit({f"flows/{etl.replace('-', '_')}.py": "# changed\n" + (flows.repo.path / f"flows/{etl.replace('-', '_')}.py").read_text()})
    preview = Scope.preview(branch, pr=7)
    result = deploy_plan(config, flows.plan(preview, on_branch, [etl]), LocalTarget(config))
    deploy_plan(config, flows.plan(Scope.preview(other), on_branch, [etl]), LocalTarget(config))

    slug = branch_slug(branch)
    assert result.created == [f"{etl}/{slug}"]
    d = read_back(flows.api, [etl])[f"{etl}/{slug}"]
    assert {"flowship", "scope:preview", f"branch:{slug}", "pr:7", f"sha:{on_branch[:12]}"} <= set(d["tags"])
    assert [s["active"] for s in d["schedules"]] == [False]  # shown, never run on a clock
    assert {s["active"] for s in main_before[f"{etl}/main"]["schedules"]} == {True}
    assert set(read_back(flows.api, [etl, train])) == set(main_before) | {f"{etl}/{slug}", f"{etl}/{branch_slug(other)}"}
    assert read_last_deployed(config, preview) == on_branch

    cleaned = cleanup_branch(config, branch, LocalTarget(config))

    assert cleaned.deleted == [f"{etl}/{slug}"] and cleaned.ok and cleaned.forgot
    after = read_back(flows.api, [etl, train])
    assert {k: v for k, v in after.items() if k.endswith("/main")} == main_before  # byte for byte
    assert set(after) == set(main_before) | {f"{etl}/{branch_slug(other)}"}  # the other preview stays
    assert read_last_deployed(config, preview) is None

    again = cleanup_branch(config, branch, LocalTarget(config))
    assert again.deleted == [] and again.ok


def test_cleanup_refuses_the_default_branch(flows):
    config = flows.config
    with pytest.raises(InputError, match="never touches main"):
        cleanup_branch(config, "main", LocalTarget(config))
    with pytest.raises(InputError):
        cleanup_branch(config, "refs/heads/main", LocalTarget(config))


def test_cleanup_command(flows, capsys):
    etl = f"etl-{uid()}"
    flows.write_flow(etl, Workflow(machine=CPU))
    config = flows.config
    head = flows.repo.commit(message="flow")
    branch = f"fix-{uid()}"
    deploy_plan(config, flows.plan(Scope.main(), head, [etl]), LocalTarget(config))
    deploy_plan(config, flows.plan(Scope.preview(branch), head, [etl]), LocalTarget(config))
    env = {"PREFECT_API_URL": flows.api}
    root = ["--root", str(flows.repo.path)]

    assert main([*root, "cleanup", "--branch", "main"], env) == 2
    assert main([*root, "cleanup", "--branch", branch], env) == 0
    err = capsys.readouterr().err
    assert "never touches main" in err and f"deleted   {etl}/{branch}" in err
    assert list(read_back(flows.api, [etl])) == [f"{etl}/main"]

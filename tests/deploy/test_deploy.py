"""Deploying plans to a real Prefect server from real git repositories (local target)."""

from __future__ import annotations

import re

import pytest

from flowship.deploy import LocalTarget, deploy_plan, read_last_deployed, record_deployed
from flowship.deploy.desired import RETRIES_ENV
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Cron, Workflow

from testing.deployments import FlowRepo, counting_client, read_back, uid

pytestmark = pytest.mark.integration

CPU = AwsEcsMachine(cpu_value=256, memory_value=512)


@pytest.fixture
def flows(repo, prefect_api) -> FlowRepo:
    return FlowRepo.create(repo, prefect_api)


def two_flows(flows: FlowRepo) -> tuple[str, str, str]:
    etl, train = f"etl-{uid()}", f"train-{uid()}"
    flows.write_flow(etl, Workflow(machine=CPU, schedules=[Cron("0 3 * * *"), 3600], tags=["etl"],
                                   parameters={"x": 5}, retries=2, retry_delay_seconds=10, concurrency_limit=1,
                                   description="nightly ETL"))
    flows.write_flow(train, Workflow(machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096,
                                                           image="ml")))
    return etl, train, flows.repo.commit(message="two flows")


def test_deploy_twice_converges_and_the_rerun_writes_nothing(flows):
    etl, train, head = two_flows(flows)
    config = flows.config
    plan = flows.plan(Scope.main(), head, [etl, train])

    first = deploy_plan(config, plan, LocalTarget(config))
    assert sorted(first.created) == sorted([f"{etl}/main", f"{train}/main"]) and first.ok and first.recorded
    before = read_back(flows.api, [etl, train])

    with counting_client(config, with_lock=True) as (client, writes):
        again = deploy_plan(config, plan, LocalTarget(config), client=client)
    assert sorted(again.unchanged) == sorted([f"{etl}/main", f"{train}/main"])
    # Only the deploy lock's take and release (deploy/lease.py): no deployment, variable or automation write.
    assert [w for w in writes if '/v2/concurrency_limits/' not in w] == []
    assert sorted(writes) == ['POST /api/v2/concurrency_limits/decrement-with-lease',
                              'POST /api/v2/concurrency_limits/increment-with-lease']
    assert read_back(flows.api, [etl, train]) == before  # same ids, same `updated`: no duplicates, no rewrite
    # Each outcome carries its deployment's id, so callers link to it and start runs without reading it again.
    for result in (first, again):
        assert {o.deployment: str(o.deployment_id) for o in result.outcomes} == {k: v["id"] for k, v in before.items()}

    d = before[f"{etl}/main"]
    assert d["version"] == head and d["work_pool_name"] == flows.pool
    assert {"flowship", "scope:main", "branch:main", f"sha:{head[:12]}", "etl"} <= set(d["tags"])
    assert "gpu" in before[f"{train}/main"]["tags"] and "gpu" not in d["tags"]
    assert d["parameters"] == {"x": 5} and d["description"].startswith("nightly ETL\n\nScope: production (main)")
    assert d["parameter_openapi_schema"]["properties"]["x"]["type"] == "integer"
    assert d["job_variables"]["env"][RETRIES_ENV] == "2"
    assert d["global_concurrency_limit"]["limit"] == 1
    assert sorted((s["schedule"].get("cron", "interval"), s["active"]) for s in d["schedules"]) == [("0 3 * * *", True), ("interval", True)]
    checkout = d["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert checkout.endswith(head) and (flows.repo.path / ".flowship" / "checkouts" / head / "flows").is_dir()


def test_a_new_commit_updates_only_what_differs(flows):
    etl, train, first = two_flows(flows)
    config = flows.config
    deploy_plan(config, flows.plan(Scope.main(), first, [etl, train]), LocalTarget(config))
    flows.declarations[etl] = Workflow(machine=CPU, tags=["etl", "daily"])
    second = flows.repo.commit({"README.md": "touch"}, message="second")

    result = deploy_plan(config, flows.plan(Scope.main(), second, [etl]), LocalTarget(config))

    assert result.updated == [f"{etl}/main"]
    changed = result.outcomes[0].detail.split(", ")
    assert {"version", "tags", "schedules", "pull_steps"} <= set(changed)
    after = read_back(flows.api, [etl, train])
    assert after[f"{etl}/main"]["version"] == second and after[f"{etl}/main"]["schedules"] == []
    assert after[f"{train}/main"]["version"] == first  # not in the plan: untouched
    assert read_last_deployed(config, Scope.main()) == second
    # What was removed (schedules, the concurrency limit, retries) is really gone: the rerun converges.
    assert deploy_plan(config, flows.plan(Scope.main(), second, [etl]), LocalTarget(config)).unchanged == [f"{etl}/main"]


def test_a_family_whose_image_failed_is_not_deployed(flows):
    etl, train, head = two_flows(flows)
    config = flows.config
    result = deploy_plan(config, flows.plan(Scope.main(), head, [etl, train]), LocalTarget(config),
                         image_failures={"ml": "the deps build failed at line 3"})
    assert result.created == [f"{etl}/main"]
    assert result.failed == {f"{train}/main": "its 'ml' image did not build (the deps build failed at line 3)"}


def test_an_older_commit_never_overwrites_a_newer_one_unless_forced(flows):
    etl, train, older = two_flows(flows)
    newer = flows.repo.commit({"README.md": "newer"}, message="newer")
    config = flows.config
    deploy_plan(config, flows.plan(Scope.main(), newer, [etl, train]), LocalTarget(config))

    late = deploy_plan(config, flows.plan(Scope.main(), older, [etl, train]), LocalTarget(config))

    assert set(late.skipped) == {f"{etl}/main", f"{train}/main"} and late.ok
    assert "newer" in late.skipped[f"{etl}/main"]
    assert {d["version"] for d in read_back(flows.api, [etl, train]).values()} == {newer}
    assert not late.recorded and read_last_deployed(config, Scope.main()) == newer

    rollback = deploy_plan(config, flows.plan(Scope.main(), older, [etl]), LocalTarget(config), force=True)
    assert rollback.updated == [f"{etl}/main"]
    assert read_back(flows.api, [etl])[f"{etl}/main"]["version"] == older


def test_deleted_flows_lose_their_deployment(flows):
    etl, train, head = two_flows(flows)
    config = flows.config
    deploy_plan(config, flows.plan(Scope.main(), head, [etl, train]), LocalTarget(config))
    gone = flows.repo.commit({f"flows/{etl.replace('-', '_')}.py": None}, message="drop etl")

    result = deploy_plan(config, flows.plan(Scope.main(), gone, [], delete=[etl]), LocalTarget(config))

    assert result.deleted == [f"{etl}/main"] and result.ok
    assert list(read_back(flows.api, [etl, train])) == [f"{train}/main"]
    again = deploy_plan(config, flows.plan(Scope.main(), gone, [], delete=[etl]), LocalTarget(config))
    assert again.outcomes[0].detail == "it was already gone" and again.ok


def test_one_failing_workflow_does_not_stop_the_others(flows):
    etl, train, head = two_flows(flows)
    config = flows.config
    plan = flows.plan(Scope.main(), head, [etl, train])
    broken = plan.workflows[0].__class__(**{**plan.workflows[0].__dict__, "entrypoint": "flows/missing.py:nope"})
    plan = plan.__class__(**{**plan.__dict__, "workflows": (broken, plan.workflows[1])})

    result = deploy_plan(config, plan, LocalTarget(config))

    assert result.created == [f"{train}/main"]
    assert "flows/missing.py does not exist" in result.failed[f"{etl}/main"]
    assert not result.ok and not result.recorded
    assert list(read_back(flows.api, [etl, train])) == [f"{train}/main"]


def test_a_deployment_flowship_did_not_make_is_not_taken_over(flows):
    etl, _, head = two_flows(flows)
    config = flows.config
    from flowship.deploy.client import open_client

    with open_client(config) as client:
        client.create_deployment(flow_id=client.create_flow_from_name(etl), name="main", tags=["hand-made"])
    result = deploy_plan(config, flows.plan(Scope.main(), head, [etl]), LocalTarget(config))
    assert "not made by flowship" in result.failed[f"{etl}/main"]
    assert read_back(flows.api, [etl])[f"{etl}/main"]["tags"] == ["hand-made"]


def test_the_last_deployed_commit_is_kept_per_scope(flows):
    config = flows.config
    head = flows.repo.commit(message="one")
    preview = Scope.preview(f"feature/{uid()}")
    assert read_last_deployed(config, preview) is None
    record_deployed(config, preview, head)
    assert read_last_deployed(config, preview) == head
    assert read_last_deployed(config, Scope.preview(f"other/{uid()}")) is None


def test_deploy_command_plans_for_itself_then_converges(flows, capsys, tmp_path):
    from flowship.cli import main

    from testing.git import cpu_flow, seed_flow

    suffix = uid()
    train, etl = f"train_{suffix}", f"etl_{suffix}"
    flows.repo.write({f"flows/{train}.py": seed_flow(train), f"flows/{etl}.py": cpu_flow(etl)})
    head = flows.repo.commit(message="flows")
    env = {"PREFECT_API_URL": flows.api}
    root = ["--root", str(flows.repo.path)]

    assert main([*root, "deploy", "--all", "--branch", "main"], env) == 0
    err = capsys.readouterr().err
    names = [f"train-{suffix}/main", f"etl-{suffix}/main"]
    assert all(re.search(rf"^{n} +created +at {head[:12]}$", err, re.M) for n in names) and "2 created" in err, err
    assert read_back(flows.api, [f"train-{suffix}", f"etl-{suffix}"])[names[0]]["version"] == head

    # From a plan file; nothing differs, so nothing is written.
    plan_file = tmp_path / "plan.json"
    assert main([*root, "plan", "--all", "--branch", "main", "--json"], env) == 0
    plan_file.write_text(capsys.readouterr().out)
    assert main([*root, "deploy", "--plan", str(plan_file)], env) == 0
    assert "2 unchanged" in capsys.readouterr().err

    # Without --all the base is the last deployed commit: nothing changed since.
    assert main([*root, "deploy", "--branch", "main"], env) == 0
    assert "nothing to do" in capsys.readouterr().err

    assert main([*root, "deploy", "--plan", str(tmp_path / "missing.json")], env) == 2


def test_prefect_errors_read_as_sentences(flows, prefect_api):
    from flowship.config import load_config
    from flowship.errors import FlowshipError, InputError

    etl, _, head = two_flows(flows)
    plan = flows.plan(Scope.main(), head, [etl])
    down = load_config(flows.repo.path, {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    with pytest.raises(FlowshipError, match=r"cannot reach Prefect at http://127.0.0.1:9/api"):
        deploy_plan(down, plan, LocalTarget(down))
    wrong = load_config(flows.repo.path, {"PREFECT_API_URL": prefect_api.removesuffix("/api")})
    with pytest.raises(FlowshipError, match=r"Prefect answered 404 .* it should be the server's API"):
        read_last_deployed(wrong, Scope.main())
    elsewhere = plan.__class__(**{**plan.__dict__, "head": "f" * 40})
    with pytest.raises(InputError, match="is not in the repository"):
        deploy_plan(flows.config, elsewhere, LocalTarget(flows.config))


def test_a_project_in_a_subdirectory_gets_only_its_own_files_at_the_commit(repo, tmp_path):
    from flowship.deploy import vcs

    sha = repo.commit({"team/flows/etl.py": "X = 1\n", "team/pyproject.toml": "", "other/secret.txt": "no\n"})
    repo.write({"team/flows/etl.py": "X = 2  # not committed\n"})
    dest = vcs.materialize(repo.path / "team", sha, tmp_path / "checkout")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["flows/etl.py", "pyproject.toml"]
    assert (dest / "flows/etl.py").read_text() == "X = 1\n"

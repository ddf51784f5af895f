"""Smoke runs after a deploy to main, on a real Prefect server with the local target and a real
process worker: a commit whose smoke run fails is put back on the previous commit (fields and
record checked), a passing one stays, and `--no-rollback` keeps a failing one."""

from __future__ import annotations


import pytest

from flowship.cli import main
from flowship.deploy.state import read_last_deployed, read_rollbacks
from flowship.errors import MachineError
from flowship.scope import Scope
from flowship.workflow import Workflow

from testing.deployments import FlowRepo, read_back, uid
from testing.worker import process_worker

CPU = "machine=AwsEcsMachine(cpu_value=256, memory_value=512)"
# What a rollback must restore exactly: everything the deployment is, except when it was written.
FIELDS = ("version", "description", "tags", "parameters", "parameter_openapi_schema", "schedules", "job_variables",
          "pull_steps", "entrypoint", "work_pool_name", "paused", "concurrency_limit", "global_concurrency_limit")


def test_smoke_is_validated_like_the_other_fields():
    assert Workflow(smoke={"epochs": 1}).smoke == {"epochs": 1}
    assert "smoke" not in Workflow().to_json()  # plans of workflows without one read as before
    assert Workflow.from_json(Workflow(smoke={"x": 1}).to_json()).smoke == {"x": 1}
    with pytest.raises(MachineError, match="smoke"):
        Workflow(smoke=[1])


def smoked_commits(flows: FlowRepo, name: str, rest: str):
    """`commit(x, message)`: the flow `name` declared with smoke={"x": x} and `rest` (its `{message}`
    filled in), committed; x < 0 makes the flow raise, a commit that breaks its smoke run."""
    def commit(x: int, message: str) -> str:
        flows.write_flow(name, Workflow(), declaration=f'{CPU}, smoke={{"x": {x}}}, ' + rest.format(message=message))
        return flows.repo.commit(message=message)

    return commit


def fields(deployment: dict) -> dict:
    out = {k: deployment.get(k) for k in FIELDS}
    out["schedules"] = sorted((str(s["schedule"]), s["active"]) for s in deployment["schedules"])
    if out["global_concurrency_limit"]:
        out["global_concurrency_limit"] = out["global_concurrency_limit"]["limit"]
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_a_failing_smoke_run_rolls_back_and_a_passing_one_stays(repo, prefect_api, tmp_path, capsys):
    flows = FlowRepo.create(repo, prefect_api)
    name = f"smoked-{uid()}"

    commit = smoked_commits(flows, name, 'description="{message}", schedules=[3600], timeout_seconds=120')

    first = commit(1, "v1")
    env = {"PREFECT_API_URL": prefect_api, "FLOWSHIP_PREFECT_UI_URL": "http://127.0.0.1:4200"}
    deploy = ["--root", str(repo.path), "deploy", "--branch", "main"]
    config = flows.config
    # The pool first, so the worker finds it.
    assert main([*deploy, "--flow", name], env) == 0
    capsys.readouterr()

    with process_worker(flows.pool, prefect_api, tmp_path) as log:
        before = fields(read_back(prefect_api, [name])[f"{name}/main"])
        assert before["version"] == first

        second = commit(-1, "v2 breaks it")
        code = main([*deploy, "--verify"], env)
        err = capsys.readouterr().err
        assert code == 1, err + log.read_text()[-3000:]
        assert f"{name} rolled back to {first[:7]}: smoke run failed: " in err
        assert "x must not be negative" in err and "http://127.0.0.1:4200/runs/flow-run/" in err
        after = fields(read_back(prefect_api, [name])[f"{name}/main"])
        assert after == before  # exactly as it was: same commit, checkout, description, schedules
        assert read_last_deployed(config, Scope.main()) == first  # the next push plans from there again
        rollback = read_rollbacks(config, Scope.main())[name]
        assert (rollback["from"], rollback["to"]) == (second, first)
        assert rollback["reason"].startswith("smoke run failed: ")

        third = commit(2, "v3 fixes it")
        code = main([*deploy, "--verify"], env)
        err = capsys.readouterr().err
        assert code == 0, err + log.read_text()[-3000:]
        assert f"{name}: smoke run completed" in err
        assert read_back(prefect_api, [name])[f"{name}/main"]["version"] == third
        assert read_last_deployed(config, Scope.main()) == third

        fourth = commit(-2, "v4 breaks it again")
        code = main([*deploy, "--verify", "--no-rollback"], env)
        err = capsys.readouterr().err
        assert code == 1 and f"{name} kept its new commit: smoke run failed: " in err
        assert read_back(prefect_api, [name])[f"{name}/main"]["version"] == fourth


@pytest.mark.integration
@pytest.mark.slow
def test_a_rollback_never_goes_to_a_commit_that_is_not_an_ancestor_of_the_head(repo, prefect_api, tmp_path, capsys):
    flows = FlowRepo.create(repo, prefect_api)
    name = f"smoked-{uid()}"

    commit = smoked_commits(flows, name, 'description="{message}"')

    env = {"PREFECT_API_URL": prefect_api}
    root = ["--root", str(repo.path)]
    base = commit(1, "base")
    # Main's deployment runs a commit of another line (a rollback by hand to a branch's commit).
    repo.git("checkout", "-q", "-b", "side")
    side = commit(3, "side")
    assert main([*root, "deploy", "--branch", "main", "--all", "--force"], env) == 0
    repo.git("checkout", "-q", "main")
    assert repo.head() == base
    with process_worker(flows.pool, prefect_api, tmp_path) as log:
        broken = commit(-1, "breaks it")
        capsys.readouterr()
        code = main([*root, "deploy", "--branch", "main", "--all", "--verify"], env)
        err = capsys.readouterr().err
    assert code == 1, err + log.read_text()[-3000:]
    assert f"{name} kept its new commit: smoke run failed: " in err
    assert f"{side[:12]} is not an ancestor of {broken[:12]}; not going there" in err
    assert read_back(prefect_api, [name])[f"{name}/main"]["version"] == broken
    assert name not in read_rollbacks(flows.config, Scope.main())


@pytest.mark.integration
@pytest.mark.slow
def test_a_preview_is_smoke_run_only_when_asked_and_never_rolled_back(repo, prefect_api, tmp_path, capsys):
    from flowship.actions.events import SMOKE_LABEL
    from testing.ci import CiRunner, pr_payload

    flows = FlowRepo.create(repo, prefect_api)
    name = f"smoked-{uid()}"

    commit = smoked_commits(flows, name, 'schedules=["0 5 * * *"]')

    env = {"PREFECT_API_URL": prefect_api}
    base = commit(1, "main")
    assert main(["--root", str(repo.path), "deploy", "--branch", "main", "--all"], env) == 0  # the pool, for the worker
    repo.git("checkout", "-q", "-b", "feat/smoke")
    head = commit(-1, "breaks the smoke run")
    ci = CiRunner(repo.path, tmp_path, env | {"FLOWSHIP_TARGET": "local"})
    preview = f"{name}/{Scope.preview('feat/smoke').name}"
    pr = {"number": 7, "branch": "feat/smoke", "head": head, "base": base}

    with process_worker(flows.pool, prefect_api, tmp_path) as log:
        # Not asked: the preview deploys, and no smoke run starts.
        step = ci("pull_request", pr_payload("opened", **pr), capsys)
        assert step.code == 0 and step.deployments == {preview: "created"}, step.log
        assert "smoke run" not in step.log
        # Adding the label deploys the preview again from the merge base (nothing changed) and
        # smoke-runs it; the failure fails the job and is reported, and the preview stays as it is.
        step = ci("pull_request", pr_payload("labeled", **pr, label=SMOKE_LABEL), capsys)
        assert step.code == 1, step.log + log.read_text()[-3000:]
        assert step.deployments == {preview: "unchanged"}
        assert f"{preview}: smoke run failed: " in step.log and "x must not be negative" in step.log
        assert "rolled back" not in step.log and "### Runs" in step.summary and "| Failed |" in step.summary
        assert read_back(prefect_api, [name])[preview]["version"] == head
        assert read_back(prefect_api, [name])[f"{name}/main"]["version"] == base  # main untouched
        # Labelled, each push smoke-runs what it changed: a fix passes.
        fixed = commit(2, "fixes it")
        step = ci("pull_request", pr_payload("synchronize", **pr | {"head": fixed}, labels=(SMOKE_LABEL,)), capsys)
        assert step.code == 0, step.log + log.read_text()[-3000:]
        assert step.deployments == {preview: "updated"} and f"{preview}: smoke run completed" in step.log

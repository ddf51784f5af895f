"""`flowship run`: a real process worker runs a flowship deployment from its commit's checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowship.cli import main
from flowship.deploy import LocalTarget, deploy_plan
from flowship.deploy.runs import parse_params, scope_for
from flowship.errors import InputError
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow

from testing.deployments import FlowRepo, uid


def test_params_are_json_else_strings():
    assert parse_params(["x=3", "label=abc", "flag=true", "xs=[1, 2]", "s=\"3\"", "empty="]) == {
        "x": 3, "label": "abc", "flag": True, "xs": [1, 2], "s": "3", "empty": "",
    }
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_params(["novalue"])


def test_scope_names(tmp_path):
    from flowship.config import Config

    config = Config(root=tmp_path)
    assert scope_for(config, "main").is_main
    assert scope_for(config, "feature/x") == Scope.preview("feature/x")


@pytest.mark.integration
@pytest.mark.slow
def test_run_wait_follows_a_real_worker_to_the_end(repo, prefect_api, tmp_path, capsys):
    flows = FlowRepo.create(repo, prefect_api)
    name = f"double-{uid()}"
    flows.write_flow(name, Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512)))
    head = repo.commit(message="a flow")
    config = flows.config
    assert deploy_plan(config, flows.plan(Scope.main(), head, [name]), LocalTarget(config)).ok
    # The worker runs the flow from the commit's checkout, not the working tree.
    repo.write({f"flows/{name.replace('-', '_')}.py": "raise SystemExit('the working tree is not what runs')\n"})

    env = os.environ | {"PREFECT_API_URL": prefect_api, "PREFECT_WORKER_QUERY_SECONDS": "1",
                        "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_LOGGING_LEVEL": "INFO"}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", flows.pool, "--type", "process"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        cli_env = {"PREFECT_API_URL": prefect_api, "FLOWSHIP_PREFECT_UI_URL": "http://127.0.0.1:4200"}
        root = ["--root", str(repo.path)]
        # PREFECT_HOME is shared so `run --wait` can read the result the worker's run persisted.
        os.environ["PREFECT_HOME"] = env["PREFECT_HOME"]
        try:
            ok = main([*root, "run", name, "--scope", "main", "--param", "x=21", "--wait"], cli_env)
            err = capsys.readouterr().err
            failed = main([*root, "run", name, "--param", "x=-1", "--wait"], cli_env)
            err_failed = capsys.readouterr().err
        finally:
            os.environ.pop("PREFECT_HOME", None)
    finally:
        worker.terminate()
        worker.wait(30)
    assert ok == 0, err + (tmp_path / "worker.log").read_text()[-3000:]
    assert "http://127.0.0.1:4200/runs/flow-run/" in err
    assert "state: Scheduled" in err and "state: Completed" in err
    assert "doubling 21 (a)" in err and "result: 42" in err
    assert failed == 1 and "state: Failed" in err_failed and "x must not be negative" in err_failed

    assert main([*root, "run", f"nope-{uid()}", "--scope", "main"], cli_env) == 2

"""Issue 10, item 14: malformed input is one sentence and exit 2, never "an unexpected error".

Each case runs the real CLI (`python -m flowship`, a subprocess) on a real
directory or git repository; the `run` case starts runs on the session's
real Prefect server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowship.deploy import LocalTarget, deploy_plan
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow
from testing.ci import pr_payload
from testing.deployments import FlowRepo, uid
from testing.git import Repo, seed_flow


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "flowship", "--root", str(root), *args],
                          env=os.environ | (env or {}), capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr


def the_error(err: str) -> str:
    """The one error line (`error: ...`, or `::error::...` in Actions), checked to be a single sentence."""
    assert "unexpected error" not in err and "Traceback" not in err, err
    errors = [re.sub(r"^(error: |::error[^:]*::)", "", line) for line in err.splitlines()
              if line.startswith(("error: ", "::error"))]
    assert len(errors) == 1, err
    [text] = errors
    # One sentence: it ends in a full stop, and no full stop inside is followed by a new sentence.
    assert text.endswith("."), text
    assert not re.search(r"[.!?]\s+[A-Z]", text), text
    return text


# -- pyproject.toml ----------------------------------------------------------------
DEEP = "{a = " * 2000 + "1" + "}" * 2000


@pytest.mark.parametrize(("content", "says"), [
    (b'[tool.flowship]\nflows = "fl\xffows"\n', "pyproject.toml is not UTF-8 text"),
    (b'tool = "x"\n', "pyproject.toml's `tool` must be a table, not str."),
    (b"[tool]\nflowship = 3\n", "tool.flowship must be a table, not int."),
    (f"[tool.flowship]\nflows = {DEEP}\n".encode(), "pyproject.toml nests tables or arrays too deeply to read."),
    (b"[tool.flowship\n", "pyproject.toml is not valid TOML: "),
], ids=["not-utf8", "tool-not-a-table", "flowship-not-a-table", "2000-deep", "toml-error"])
def test_a_malformed_pyproject_is_one_sentence_naming_it(repo: Repo, content: bytes, says: str):
    repo.commit({"flows/train.py": seed_flow("train")})
    (repo.path / "pyproject.toml").write_bytes(content)
    code, err = cli(repo.path, "plan", "--all")
    assert code == 2, err
    assert says in the_error(err)


# -- the event ------------------------------------------------------------------------
def run_ci(root: Path, tmp_path: Path, payload: bytes) -> tuple[int, str]:
    path = tmp_path / "event.json"
    path.write_bytes(payload)
    return cli(root, "ci", env={
        "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": "octo/flows", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"), "FLOWSHIP_DRY_RUN": "true",
    })


def pull_request(head: str, base: str, **overrides: object) -> dict:
    data = pr_payload("opened", number=4, branch="feat", head=head, base=base)
    return data | overrides


@pytest.mark.parametrize("number", ["abc", True, 1.5, -3, "12"])
def test_an_event_whose_number_is_not_a_number_is_bad_input(repo: Repo, tmp_path: Path, number: object):
    base = repo.commit({"flows/train.py": seed_flow("train")})
    code, err = run_ci(repo.path, tmp_path, json.dumps(pull_request(base, base, number=number)).encode())
    assert code == 2, err
    assert "the event payload's pull request number" in the_error(err)
    assert "is not a positive whole number" in err


def test_an_event_payload_that_is_not_utf8_is_bad_input(repo: Repo, tmp_path: Path):
    base = repo.commit({"flows/train.py": seed_flow("train")})
    payload = json.dumps(pull_request(base, base)).encode().replace(b'"A change"', b'"A \xff change"')
    code, err = run_ci(repo.path, tmp_path, payload)
    assert code == 2, err
    assert "is not UTF-8" in the_error(err) and str(tmp_path / "event.json") in err


# -- git ----------------------------------------------------------------------------
def test_plan_outside_a_git_repository_says_so(tmp_path: Path):
    folder = tmp_path / "not-a-clone"
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[tool.flowship]\nflows = "flows"\n')
    for args in (("plan",), ("plan", "--branch", "main", "--all")):
        code, err = cli(folder, *args)
        assert code == 2, err
        text = the_error(err)
        assert text == f"{folder} is not inside a git repository; run flowship from a clone.", text
        assert "detached" not in err


def test_a_detached_head_still_says_detached(repo: Repo):
    repo.commit({"flows/train.py": seed_flow("train")})
    repo.git("checkout", "-q", "--detach", "HEAD")
    code, err = cli(repo.path, "plan")
    assert code == 2 and "HEAD is detached" in the_error(err)


# -- flowship run -------------------------------------------------------------------
@pytest.mark.integration
def test_a_bad_param_names_the_parameter_and_what_is_wrong(repo: Repo, prefect_api: str):
    flows = FlowRepo.create(repo, prefect_api)
    name = f"params-{uid()}"
    flows.write_flow(name, Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512)))
    head = repo.commit(message="a flow")
    assert deploy_plan(flows.config, flows.plan(Scope.main(), head, [name]), LocalTarget(flows.config)).ok
    env = {"PREFECT_API_URL": prefect_api}

    code, err = cli(repo.path, "run", name, "--param", "x=abc", env=env)
    assert code == 2, err
    text = the_error(err)
    assert text.startswith(f"--param x is not valid for {name}/main: ") and "integer" in text, text
    assert "another owner" not in err

    code, err = cli(repo.path, "run", name, "--param", "x=21", env=env)  # a good one still starts
    assert code == 0, err
    assert "started " in err and f"of {name}/main" in err

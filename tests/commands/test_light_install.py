"""The action's light install (a fork's pull request: flowship plus pyproject's `plan` extra).

A fork's run is only planned, so the action installs flowship without Prefect,
boto3 or docker (action.yml, "Install flowship"). These tests run the real
`python -m flowship` with those packages made unimportable, as in that
install, and check that the fork's whole `flowship ci` works and that a
command that needs them says so in one sentence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from testing.ci import FORK_NAME, REPO_NAME, pr_payload
from testing.git import Repo, cpu_flow
from testing.github_server import GitHubServer, parse_outputs

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("prefect", "prefect_aws", "boto3", "botocore", "docker", "httpx")

# Made importable first through PYTHONPATH: the packages the light install lacks cannot be found.
SITECUSTOMIZE = f'''
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


def _light_env(tmp: Path, **extra: str) -> dict[str, str]:
    site = tmp / "light-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PREFECT_", "FLOWSHIP_"))}
    return env | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "action")])} | extra


def test_the_plan_extra_is_a_subset_of_the_dependencies():
    """One copy of each pin: the light install asks for exactly what the full one does."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert set(project["optional-dependencies"]["plan"]) <= set(project["dependencies"])


@pytest.mark.integration
def test_a_forks_pull_request_runs_all_of_flowship_ci_without_prefect_boto3_or_docker(repo: Repo, tmp_path):
    base = repo.commit({"pyproject.toml": '[tool.flowship]\nflows = "flows"\nproject = "light"\n',
                        "flows/train_light.py": cpu_flow("train_light")})
    repo.git("checkout", "-q", "-b", "patch-1")
    head = repo.commit({"flows/train_light.py": cpu_flow("train_light") + "\n# from a fork\n"})
    event, output, summary = tmp_path / "event.json", tmp_path / "output", tmp_path / "summary.md"
    event.write_text(json.dumps(pr_payload("opened", number=9, branch="patch-1", head=head, base=base, fork=True)))
    with GitHubServer() as github:
        github.add_token("ghs_readonly5678", read_only=True)
        github.add_repo(REPO_NAME)
        github.add_pull(REPO_NAME, 9, title="Drive-by", head="patch-1", head_repo=FORK_NAME)
        env = _light_env(tmp_path, GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=str(event),
                         GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary), GITHUB_REPOSITORY=REPO_NAME,
                         GITHUB_API_URL=github.url, GITHUB_SHA=head, GITHUB_REF="refs/pull/9/merge",
                         GITHUB_TOKEN="ghs_readonly5678", FLOWSHIP_TARGET="ecs")
        proc = subprocess.run([sys.executable, "-m", "flowship", "--root", str(repo.path), "ci"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(parse_outputs(output.read_text())["plan"])
    assert [w["name"] for w in plan["workflows"]] == ["train-light"]
    assert "comes from a fork" in summary.read_text()


def test_a_command_that_needs_the_full_install_says_so_in_one_sentence(repo: Repo, tmp_path):
    repo.commit({"pyproject.toml": '[tool.flowship]\nflows = "flows"\nproject = "light"\n',
                 "flows/train_light.py": cpu_flow("train_light")})
    env = _light_env(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    proc = subprocess.run([sys.executable, "-m", "flowship", "--root", str(repo.path), "deploy", "--all",
                           "--target", "local", "--branch", "main"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if "error" in x.lower()]
    assert "installed for planning only" in line and "prefect" in line and "Traceback" not in proc.stderr

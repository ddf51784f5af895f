"""A rollback is a commit of the branch it was dispatched on.

`workflow_dispatch` with a `sha` deploys that commit with force (over newer
ones) and records it as the scope's last deploy. A commit no one merged into
the branch (an unmerged branch's commit, or that branch's name) is refused
with one sentence and exit 2, nothing deployed or recorded, and the summary
still says why; an older commit of the branch still rolls back. Driven
through the real `flowship ci` with GitHub's own dispatch payload, a real
git repository and the session's Prefect server.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from flowship.actions.events import read_event
from testing.ci import ZERO, CiRunner, dispatch_payload, push_payload
from testing.deployments import read_back
from testing.git import Repo, cpu_flow

pytestmark = pytest.mark.integration


class Flows:
    """One flow on main, two commits of main deployed in turn, and an unmerged branch."""

    def __init__(self, repo: Repo, runner: CiRunner, api: str):
        self.repo, self.ci, self.api = repo, runner, api
        self.suffix = uuid.uuid4().hex[:6]
        self.module = f"etl_{self.suffix}"
        self.name = self.module.replace("_", "-")
        self.deployment = f"{self.name}/main"

    def source(self, rows: int) -> dict[str, str]:
        return {f"flows/{self.module}.py": cpu_flow(self.module).replace("rows: int = 10", f"rows: int = {rows}")}

    def seed(self, capsys) -> tuple[str, str]:
        old = self.repo.commit({
            "pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "p{self.suffix}"\n'
                              f'[tool.flowship.pools]\nlocal = "pool-{self.suffix}"\n',
            ".gitignore": ".flowship/\n",
        } | self.source(10), message="old")
        assert self.ci("push", push_payload(before=ZERO, after=old), capsys).code == 0
        new = self.repo.commit(self.source(20), message="new")
        assert self.ci("push", push_payload(before=old, after=new), capsys).code == 0
        return old, new

    def unmerged(self) -> str:
        """A commit of a branch that was never merged into main (main stays checked out)."""
        self.repo.git("checkout", "-q", "-b", "feature/unmerged")
        sha = self.repo.commit(self.source(99), message="unmerged")
        self.repo.git("checkout", "-q", "main")
        return sha

    def deployed(self) -> str:
        return read_back(self.api, [self.name])[self.deployment]["version"]

    def recorded(self) -> str | None:
        resp = httpx.get(f"{self.api}/variables/name/flowship_deployed_p{self.suffix}_main")
        return None if resp.status_code == 404 else resp.json()["value"]


@pytest.fixture
def flows(repo, tmp_path, prefect_api) -> Flows:
    runner = CiRunner(repo.path, tmp_path, {"PREFECT_API_URL": prefect_api, "FLOWSHIP_TARGET": "local"})
    return Flows(repo, runner, prefect_api)


def test_the_dispatched_branch_head_is_kept_beside_the_commit_to_deploy(tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(dispatch_payload(sha="a" * 40)))
    event = read_event({"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_EVENT_PATH": str(path),
                        "GITHUB_SHA": "b" * 40})
    assert (event.head, event.inputs.ref, event.inputs.branch_head) == ("a" * 40, "a" * 40, "b" * 40)


@pytest.mark.parametrize("spelling", ["sha", "branch name"])
def test_a_commit_of_an_unmerged_branch_is_refused_and_nothing_moves(flows, capsys, spelling):
    old, new = flows.seed(capsys)
    foreign = flows.unmerged()
    asked = foreign if spelling == "sha" else "feature/unmerged"

    step = flows.ci("workflow_dispatch", dispatch_payload(sha=asked), capsys, GITHUB_SHA=new)

    assert step.code == 2, step.log
    sentence = (f"a rollback deploys a commit of main, and {foreign[:12]} is not one (not an ancestor of its head "
                f"{new[:12]}); merge it first, or dispatch on the branch that has it.")
    assert [line for line in step.log.splitlines() if line.startswith("::error")] == [f"::error::{sentence}"]
    assert "Traceback" not in step.log
    # Nothing was planned, deployed or recorded; production still runs main's head.
    assert step.outputs["plan"] == "" and step.deployments == {}
    assert flows.deployed() == new and flows.recorded() == new
    # The summary says why the run failed.
    assert "is not one" in step.summary and "merge it first" in step.summary


def test_an_older_commit_of_the_branch_still_rolls_back(flows, capsys):
    old, new = flows.seed(capsys)
    flows.unmerged()  # a branch beside main changes nothing about main's own history

    step = flows.ci("workflow_dispatch", dispatch_payload(sha=old), capsys, GITHUB_SHA=new)

    assert step.code == 0, step.log
    assert step.deployments == {flows.deployment: "updated"}
    assert json.loads(step.outputs["plan"])["head"] == old
    assert flows.deployed() == old and flows.recorded() == old
    assert "Rollback" in step.summary
    # Dispatching main's own head as `sha` is a rerun, not a refusal.
    step = flows.ci("workflow_dispatch", dispatch_payload(sha=new), capsys, GITHUB_SHA=new)
    assert step.code == 0, step.log
    assert flows.deployed() == new


def test_a_rollback_without_the_branch_head_is_refused(flows, capsys):
    old, _ = flows.seed(capsys)
    step = flows.ci("workflow_dispatch", dispatch_payload(sha=old), capsys, GITHUB_SHA="")
    assert step.code == 2, step.log
    assert f"::error::cannot check that {old[:12]} is a commit of main, as GITHUB_SHA does not name" in step.log

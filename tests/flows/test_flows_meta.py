"""The meta flows against a real Prefect server: preview cleanup and deployment health.

Deployments are created with the Prefect client and flowship's tags; each test
uses flow names of its own, and the flows are limited to them (`only_flows`,
`tags`), so nothing another test left on the shared server is touched.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flows.common.previews import PreviewDeployment, stale_previews
from flowship.scope import branch_slug

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("drain_prefect")]
ROOT = Path(__file__).resolve().parents[2]


def client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_deployment(flow_name: str, name: str, tags: list[str]) -> str:
    with client() as c:
        flow_id = c.create_flow_from_name(flow_name)
        return str(c.create_deployment(flow_id=flow_id, name=name, tags=tags))


def deployments_of(*flow_names: str) -> set[str]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with client() as c:
        found = c.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names))))
        names = {f: c.read_flow(f).name for f in {d.flow_id for d in found}}
    return {f"{names[d.flow_id]}/{d.name}" for d in found}


def artifact_rows(flow_run_id, key: str) -> list[dict]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with client() as c:
        (art,) = c.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])))
    return json.loads(art.data) if isinstance(art.data, str) else art.data


def preview(slug: str, pr: int | None = None) -> frozenset[str]:
    return frozenset({"flowship", "scope:preview", f"branch:{slug}"} | ({f"pr:{pr}"} if pr else set()))


MAIN_TAGS = ["flowship", "scope:main", "branch:main", "sha:0123456789ab"]
ODD_BRANCH = "Feature/Odd_Name"  # a lossy slug: live branch names must be slugged to match


@pytest.fixture
def fleet(prefect_api):
    """Two flows with main and preview deployments; returns (flow names, {case: full name})."""
    a, b = unique("cleanup-a"), unique("cleanup-b")
    odd = branch_slug(ODD_BRANCH)
    cases = {
        "main": (a, "main", MAIN_TAGS),
        "open pr": (a, "feature-live", sorted(preview("feature-live", 11))),
        "branch gone": (a, "gone-branch", sorted(preview("gone-branch"))),
        "odd live": (a, odd, sorted(preview(odd))),
        "pr closed": (b, "closed-pr", sorted(preview("closed-pr", 12))),
        "main of b": (b, "main", MAIN_TAGS),
        # Preview tags *and* scope:main: a contradiction cleanup must never resolve by deleting.
        "mislabelled": (b, "old-thing", ["flowship", "scope:preview", "scope:main", "branch:old-thing"]),
        "not flowship": (b, "someone-elses", ["scope:preview", "branch:someone-elses"]),
    }
    for flow_name, name, tags in cases.values():
        make_deployment(flow_name, name, tags)
    return (a, b), {case: f"{f}/{n}" for case, (f, n, _) in cases.items()}


def test_cleanup_removes_exactly_the_stale_previews(fleet):
    from flows.cleanup_previews import cleanup_previews

    flows, names = fleet
    state = cleanup_previews(
        live_branches=["main", "feature-live", "closed-pr", ODD_BRANCH], open_prs=[11],
        only_flows=list(flows), return_state=True,
    )
    assert state.is_completed(), state.message
    out = state.result()
    assert out["removed"] == sorted([names["branch gone"], names["pr closed"]])
    assert deployments_of(*flows) == set(names.values()) - {names["branch gone"], names["pr closed"]}
    rows = artifact_rows(state.state_details.flow_run_id, "cleanup-previews")
    assert {r["deployment"]: r["reason"] for r in rows} == {
        names["branch gone"]: "branch 'gone-branch' no longer exists",
        names["pr closed"]: "pull request #12 is closed",
    }

    # Run again: nothing left to remove, main untouched.
    again = cleanup_previews(live_branches=["main"], open_prs=[11], only_flows=list(flows))
    assert again["removed"] == [names["odd live"]]  # its branch is not live any more this time
    assert names["main"] in deployments_of(*flows) and names["main of b"] in deployments_of(*flows)


def test_cleanup_dry_run_removes_nothing(fleet):
    from flows.cleanup_previews import cleanup_previews

    flows, names = fleet
    before = deployments_of(*flows)
    out = cleanup_previews(live_branches=["main"], open_prs=[], only_flows=list(flows), dry_run=True)
    assert out["removed"] == [] and deployments_of(*flows) == before


def test_cleanup_reads_live_branches_with_git(fleet, repo):
    """`source="git:URL"`: branches from `git ls-remote` on a real repository (pull requests unknown)."""
    from flows.cleanup_previews import cleanup_previews

    flows, names = fleet
    repo.commit({"README.md": "hi\n"})
    for branch in ("feature-live", ODD_BRANCH):
        repo.git("branch", branch)
    out = cleanup_previews(source=f"git:{repo.path}", only_flows=list(flows))
    # No pull request information: the closed PR's branch is gone from git, so it goes too.
    assert out["removed"] == sorted([names["branch gone"], names["pr closed"]])
    assert names["open pr"] in out["kept"] and names["odd live"] in out["kept"]


def test_cleanup_reads_branches_and_pulls_from_github(fleet, monkeypatch):
    """`source="github:OWNER/NAME"`: PyGithub against a local server answering GitHub's payloads."""
    from flows.cleanup_previews import cleanup_previews

    flows, names = fleet
    with FakeGitHub(branches=["main", "feature-live", "closed-pr", ODD_BRANCH], open_pulls=[11]) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
        # target="local": each removed preview also goes through flowship's Target.cleanup.
        out = cleanup_previews(source="github:acme/ml", github_api_url=gh.url, only_flows=list(flows),
                               target="local", root=str(ROOT))
        assert gh.tokens == {"ghs_test"}
    assert out["removed"] == sorted([names["branch gone"], names["pr closed"]])


def test_cleanup_without_a_source_fails_clearly(prefect_api):
    from flows.cleanup_previews import cleanup_previews

    state = cleanup_previews(only_flows=["nothing"], return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="github:OWNER/NAME"):
        state.result()


# --- the pure core ---------------------------------------------------------

def dep(name: str, tags: frozenset[str], branch: str | None = None) -> PreviewDeployment:
    return PreviewDeployment(id=name, flow_name="f", name=name, tags=tags, branch=branch)


def test_stale_previews_never_returns_main_or_foreign_deployments():
    everything = [
        dep("main", frozenset({"flowship", "scope:main", "branch:main"})),
        dep("main", frozenset({"flowship", "scope:preview", "branch:x"})),  # named like main
        dep("x", frozenset({"scope:preview", "branch:x"})),
        dep("y", frozenset({"flowship", "scope:preview"})),  # no branch tag: cannot tell
        dep("z", frozenset({"flowship", "scope:preview", "branch:z"})),
    ]
    assert [s.deployment.name for s in stale_previews(everything, ["main"], [])] == ["z"]


def test_stale_previews_rules():
    open_fork_pr = dep("fork-branch", preview("fork-branch", 5))  # branch lives in a fork
    full_name = dep(branch_slug("a/b"), preview(branch_slug("a/b")), branch="a/b")
    assert stale_previews([open_fork_pr, full_name], ["main", "a/b"], [5]) == []
    assert [s.reason for s in stale_previews([open_fork_pr], ["main"], None)] == ["branch 'fork-branch' no longer exists"]
    with pytest.raises(ValueError, match="no live branches"):
        stale_previews([open_fork_pr], [], [5])


# --- health ----------------------------------------------------------------

def run_deployment_runs(flow_name: str, deployment_id: str, plan: list[tuple[float, bool, timedelta]]) -> None:
    """Run real flow runs of a deployment in-process: (seconds to take, fail?, how late it starts)."""
    from prefect import flow
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    @flow(name=flow_name)
    def probe(seconds: float, fail: bool) -> None:
        time.sleep(seconds)
        if fail:
            raise RuntimeError("probe failed on purpose")

    for seconds, fail, late in plan:
        with client() as c:
            scheduled = datetime.now(timezone.utc) - late
            flow_run = c.create_flow_run_from_deployment(
                deployment_id, parameters={"seconds": seconds, "fail": fail}, state=Scheduled(scheduled_time=scheduled),
            )
        run_flow(probe, flow_run=flow_run, parameters={"seconds": seconds, "fail": fail}, return_type="state")


def test_health_reports_failing_late_and_slow_deployments(prefect_api):
    from flows.health import deployment_health

    tag = unique("health")
    tags = ["flowship", "scope:main", tag]
    flows = {kind: unique(f"health-{kind}") for kind in ("steady", "failing", "late", "slow")}
    ids = {kind: make_deployment(name, "main", tags) for kind, name in flows.items()}
    on_time = timedelta(0)
    run_deployment_runs(flows["steady"], ids["steady"], [(0.1, False, on_time)])
    run_deployment_runs(flows["failing"], ids["failing"], [(0.0, False, on_time), (0.0, True, on_time)])
    run_deployment_runs(flows["late"], ids["late"], [(0.0, False, timedelta(hours=1))])
    run_deployment_runs(flows["slow"], ids["slow"], [(0.1, False, on_time)] * 2 + [(2.0, False, on_time)])

    state = deployment_health(tags=tags, slow_factor=3.0, min_history=2, late_after_seconds=600, return_state=True)
    assert state.is_failed()
    rows = {r["deployment"]: r for r in artifact_rows(state.state_details.flow_run_id, "deployment-health")}
    assert set(rows) == {f"{name}/main" for name in flows.values()}
    status = {kind: rows[f"{flows[kind]}/main"] for kind in flows}
    assert status["steady"]["status"] == "ok" and status["steady"]["problems"] == ""
    assert status["failing"]["failed"] == 1 and "1 of 2 finished runs failed" in status["failing"]["problems"]
    assert status["late"]["late"] == 1 and status["late"]["worst_delay_s"] >= 3600
    assert status["slow"]["slow"] == 1 and status["slow"]["worst_slowdown"] > 3.0
    assert status["slow"]["failed"] == 0 and status["slow"]["late"] == 0
    for kind in ("failing", "late", "slow"):
        assert f"{flows[kind]}/main" in state.message

    # The same report over the steady deployment alone ends Completed.
    only_steady = unique("steady")
    with client() as c:
        from prefect.client.schemas.actions import DeploymentUpdate

        c.update_deployment(ids["steady"], DeploymentUpdate(tags=[*tags, only_steady]))
    fine = deployment_health(tags=[only_steady], return_state=True)
    assert fine.is_completed(), fine.message
    assert fine.result() == {"deployments": 1, "unhealthy": []}


# --- a local GitHub API for PyGithub ---------------------------------------

class FakeGitHub:
    """Answers GET /repos/{r}, /repos/{r}/branches and /repos/{r}/pulls?state=open with GitHub's payload shapes."""

    def __init__(self, branches: list[str], open_pulls: list[int]):
        self.branches, self.open_pulls, self.tokens = branches, open_pulls, set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.tokens.add(self.headers.get("Authorization", "").removeprefix("token ").removeprefix("Bearer "))
                path, _, query = self.path.partition("?")
                parts = path.strip("/").split("/")
                repo = "/".join(parts[1:3])
                api = f"{outer.url}/repos/{repo}"
                if parts[3:] == []:
                    body = {"id": 1, "name": parts[2], "full_name": repo, "default_branch": "main", "url": api}
                elif parts[3:] == ["branches"]:
                    body = [{"name": b, "commit": {"sha": "0" * 40, "url": f"{api}/commits/{'0' * 40}"}, "protected": False}
                            for b in outer.branches]
                elif parts[3:] == ["pulls"] and "state=open" in query:
                    body = [{"number": n, "state": "open", "url": f"{api}/pulls/{n}", "title": f"pr {n}"} for n in outer.open_pulls]
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

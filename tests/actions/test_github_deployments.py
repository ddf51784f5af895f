"""GitHub Deployments (issue 13, item 4), against the repository's GitHub API
stand-in: a pull request's preview is the environment `flowship/preview-<slug>`,
each push a deployment that goes in_progress -> success with the Prefect UI as
its URL; closing the pull request makes them inactive. Without
`deployments: write`, one warning and nothing else. The walk uses the real
webhook payloads (testing/github-payloads) and a real Prefect server."""

from __future__ import annotations

import uuid

import pytest

from flowship.actions import deployments
from flowship.scope import Scope
from testing.ci import REPO_NAME, CiRunner, pr_payload
from testing.git import cpu_flow
from testing.github_server import GitHubServer

UI = "http://prefect-ui.localhost"


@pytest.fixture
def github():
    with GitHubServer() as server:
        server.add_repo(REPO_NAME)
        server.add_pull(REPO_NAME, 9, title="Faster ETL", head="feat/etl")
        yield server


def deployment_calls(server: GitHubServer) -> list[tuple[str, str]]:
    return [(r.method, r.path.removeprefix(f"/repos/{REPO_NAME}")) for r in server.state.requests
            if "/deployments" in r.path]


def test_a_deploy_goes_in_progress_then_success_with_the_prefect_ui_as_its_url(github):
    github.add_token("ghs_ok")
    scope = Scope.preview("feat/etl", 9)
    tracker = deployments.start(api_url=github.url, token="ghs_ok", repository=REPO_NAME, scope=scope, sha="a" * 40,
                                log_url="https://github.com/octo/flows/actions/runs/1")
    tracker.finish(True, environment_url=f"{UI}/deployments/deployment/1", log_url=None)

    [d] = github.state.deployments
    assert (d.environment, d.ref, d.transient, d.production) == (f"flowship/preview-{scope.slug}", "a" * 40, True, False)
    assert [s["state"] for s in d.statuses] == ["in_progress", "success"]
    assert d.statuses[-1]["environment_url"] == f"{UI}/deployments/deployment/1"
    assert d.statuses[0]["target_url"] == "https://github.com/octo/flows/actions/runs/1"

    main = deployments.start(api_url=github.url, token="ghs_ok", repository=REPO_NAME, scope=Scope.main(), sha="b" * 40)
    main.finish(False, environment_url=None, log_url=None)
    production = github.state.deployments[-1]
    assert (production.environment, production.production, production.transient) == ("flowship/main", True, False)
    assert [s["state"] for s in production.statuses] == ["in_progress", "failure"]


def test_without_deployments_write_one_warning_and_nothing_else(github, capsys):
    github.add_token("ghs_no_deploy", deployments=False)
    scope = Scope.preview("feat/etl", 9)
    tracker = deployments.start(api_url=github.url, token="ghs_no_deploy", repository=REPO_NAME, scope=scope,
                                sha="a" * 40)
    tracker.finish(True, environment_url=UI, log_url=None)

    err = capsys.readouterr().err
    assert err.count("deployments: write") == 1 and "403" in err and "Traceback" not in err
    assert github.state.deployments == []
    assert deployment_calls(github) == [("POST", "/deployments")]  # the one refused call, no retry, no status


@pytest.mark.integration
def test_open_synchronize_close_walks_the_deployments_api(github, repo, tmp_path, prefect_api, capsys):
    suffix = uuid.uuid4().hex[:6]
    flow = f"dep_{suffix}"
    token = f"ghs_{uuid.uuid4().hex}"
    github.add_token(token)
    base = repo.commit({
        "pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "d{suffix}"\n',
        ".gitignore": ".flowship/\n", f"flows/{flow}.py": cpu_flow(flow),
    }, message="seed")
    repo.git("checkout", "-q", "-b", "feat/etl")
    ci = CiRunner(repo.path, tmp_path, {"GITHUB_TOKEN": token, "PREFECT_API_URL": prefect_api,
                                        "FLOWSHIP_TARGET": "local", "FLOWSHIP_PREFECT_UI_URL": UI}, github)
    environment = f"flowship/preview-{Scope.preview('feat/etl').slug}"

    head1 = repo.commit({f"flows/{flow}.py": cpu_flow(flow).replace("rows: int = 10", "rows: int = 11")})
    opened = ci("pull_request", pr_payload("opened", number=9, branch="feat/etl", head=head1, base=base), capsys)
    assert opened.code == 0, opened.log
    [first] = github.state.deployments
    assert (first.environment, first.ref) == (environment, head1)
    assert [s["state"] for s in first.statuses] == ["in_progress", "success"]
    assert first.statuses[-1]["environment_url"] == opened.outputs["preview-url"]
    assert opened.outputs["preview-url"].startswith(f"{UI}/deployments/deployment/")
    assert first.statuses[-1]["target_url"] == f"https://github.com/{REPO_NAME}/actions/runs/4201"
    # The comment also says what merging will do: main has no such flow yet.
    [comment] = github.comments(REPO_NAME, 9)
    assert "### What merging will do to production\n\n**1 to create, 0 to update, 0 to delete** in `main`" in comment.body

    head2 = repo.commit({f"flows/{flow}.py": cpu_flow(flow).replace("rows: int = 10", "rows: int = 12")})
    pushed = ci("pull_request", pr_payload("synchronize", number=9, branch="feat/etl", head=head2, base=base), capsys)
    assert pushed.code == 0, pushed.log
    first, second = github.state.deployments
    assert second.ref == head2 and [s["state"] for s in second.statuses] == ["in_progress", "success"]
    assert first.state == "inactive"  # GitHub's auto_inactive: the newer success replaces it

    closed = ci("pull_request", pr_payload("closed", number=9, branch="feat/etl", head=head2, base=base,
                                           merged=False), capsys)
    assert closed.code == 0, closed.log
    assert len(github.state.deployments) == 2  # a cleanup records no deployment of its own
    assert [d.state for d in github.state.deployments] == ["inactive", "inactive"]
    assert deployment_calls(github) == [
        ("POST", "/deployments"), ("POST", f"/deployments/{first.id}/statuses"),
        ("POST", f"/deployments/{first.id}/statuses"),
        ("POST", "/deployments"), ("POST", f"/deployments/{second.id}/statuses"),
        ("POST", f"/deployments/{second.id}/statuses"),
        ("GET", "/deployments"),
        ("POST", f"/deployments/{second.id}/statuses"), ("POST", f"/deployments/{first.id}/statuses"),
    ]
    assert not any("deployments: write" in line for step in (opened, pushed, closed) for line in step.log.splitlines())

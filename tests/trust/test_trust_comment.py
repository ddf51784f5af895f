"""Issue 10, item 9: the GitHub side cannot silence the report.

Against the repository's GitHub API stand-in: a comment someone else posted
with flowship's hidden marker neither blocks flowship's own comment nor is
ever touched, whether the token is an Actions installation token (GET /user
answers 403, comments are by github-actions[bot]) or a person's. A GitHub
answer PyGithub cannot read (a 200 with a body GitHub never sends) is a
warning in a real `flowship ci` run: the summary and outputs are still
written and the exit status is that of a success.
"""

from __future__ import annotations

import json
import uuid

import pytest

from flowship.actions.github import COMMENT_MARKER, upsert_comment
from testing.ci import REPO_NAME, CiRunner, pr_payload
from testing.git import cpu_flow
from testing.github_server import BOT, GitHubServer

ATTACKER = {"login": "mallory", "id": 666, "node_id": "U_666", "type": "User", "site_admin": False}
# Another app's bot: the `type == "Bot"` guess flowship once made would have taken it for its own.
OTHER_BOT = {"login": "evil-app[bot]", "id": 667, "node_id": "B_667", "type": "Bot", "site_admin": False}


@pytest.fixture
def github():
    with GitHubServer() as server:
        server.add_repo(REPO_NAME)
        server.add_pull(REPO_NAME, 5, title="t", head="feat")
        yield server


def writes(server: GitHubServer) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in server.state.requests if r.method != "GET"]


def test_a_planted_marker_does_not_block_the_comment_and_is_never_touched(github):
    github.add_token("ghs_actions")  # an installation token: GET /user is 403
    planted = [github.add_comment(REPO_NAME, 5, f"{COMMENT_MARKER}\nfake preview", user=u) for u in (ATTACKER, OTHER_BOT)]

    first = upsert_comment(api_url=github.url, token="ghs_actions", repository=REPO_NAME, number=5, body="one")
    second = upsert_comment(api_url=github.url, token="ghs_actions", repository=REPO_NAME, number=5, body="two")

    assert (first.action, second.action) == ("created", "updated") and first.id == second.id
    assert first.id not in {c.id for c in planted}
    comments = {c.id: c for c in github.comments(REPO_NAME, 5)}
    assert comments[first.id].user == BOT and comments[first.id].body == f"{COMMENT_MARKER}\ntwo"
    for c in planted:
        assert (comments[c.id].body, comments[c.id].edits) == (f"{COMMENT_MARKER}\nfake preview", 0)
    assert writes(github) == [("POST", f"/repos/{REPO_NAME}/issues/5/comments"),
                              ("PATCH", f"/repos/{REPO_NAME}/issues/comments/{first.id}")]
    assert ("GET", "/user") in [(r.method, r.path) for r in github.state.requests]


def test_a_personal_token_edits_only_its_own_users_comment(github):
    github.add_token("ghp_alice", login="alice")
    # Even github-actions[bot]'s marked comment is someone else's to this token.
    actions = github.add_comment(REPO_NAME, 5, f"{COMMENT_MARKER}\nby the bot", user=BOT)
    planted = github.add_comment(REPO_NAME, 5, f"{COMMENT_MARKER}\nfake", user=ATTACKER)

    first = upsert_comment(api_url=github.url, token="ghp_alice", repository=REPO_NAME, number=5, body="one")
    second = upsert_comment(api_url=github.url, token="ghp_alice", repository=REPO_NAME, number=5, body="two")

    assert (first.action, second.action) == ("created", "updated") and first.id == second.id
    comments = {c.id: c for c in github.comments(REPO_NAME, 5)}
    assert comments[first.id].user["login"] == "alice" and comments[first.id].edits == 1
    assert comments[actions.id].edits == 0 and comments[planted.id].edits == 0


@pytest.mark.parametrize("route", ["list_comments", "create_comment"])
def test_a_garbage_200_from_github_is_a_warning_and_the_report_is_still_written(
        route, github, repo, tmp_path, prefect_api, capsys):
    suffix = uuid.uuid4().hex[:6]
    flow = f"cmt_{suffix}"
    token = f"ghs_{uuid.uuid4().hex}"
    github.add_token(token)
    github.answer_badly(route)
    base = repo.commit({
        "pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "c{suffix}"\n',
        ".gitignore": ".flowship/\n", f"flows/{flow}.py": cpu_flow(flow),
    }, message="seed")
    repo.git("checkout", "-q", "-b", "feat")
    head = repo.commit({f"flows/{flow}.py": cpu_flow(flow).replace("rows: int = 10", "rows: int = 11")})
    ci = CiRunner(repo.path, tmp_path, {"GITHUB_TOKEN": token, "PREFECT_API_URL": prefect_api,
                                        "FLOWSHIP_TARGET": "local"}, github)

    step = ci("pull_request", pr_payload("opened", number=5, branch="feat", head=head, base=base), capsys)

    assert step.code == 0, step.log
    warnings = [line for line in step.log.splitlines() if line.startswith("::warning")]
    assert any("the GitHub API answered unexpectedly while commenting on #5" in w
               or "GitHub's answer was not a comment" in w for w in warnings), step.log
    assert "unexpected error" not in step.log and "Traceback" not in step.log
    assert step.summary.startswith("## flowship: preview of feat") and "1 created." in step.summary
    assert step.deployments == {f"{flow.replace('_', '-')}/feat": "created"}
    assert json.loads(step.outputs["plan"])["head"] == head
    assert step.outputs["preview-url"] == ""  # no comment, no preview UI url configured

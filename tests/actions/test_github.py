"""Step outputs, the job summary and the PR comment against a local GitHub API."""

from __future__ import annotations

import pytest

from flowship.errors import FlowshipError
from flowship.actions.github import COMMENT_MARKER, format_outputs, upsert_comment, write_outputs
from testing.github_server import GitHubServer, parse_outputs

REPO = "octo/flows"




def test_outputs_survive_values_that_look_like_delimiters_and_commands(tmp_path):
    hostile = "a\nEOF\nplan<<EOF\n::error::x\nghadelimiter_\n"
    path = tmp_path / "out"
    write_outputs(str(path), {"plan": hostile, "preview-url": ""})
    write_outputs(str(path), {"images": "{}"})
    assert parse_outputs(path.read_text()) == {"plan": hostile, "preview-url": "", "images": "{}"}


def test_output_delimiters_are_random():
    assert format_outputs({"a": "1"}) != format_outputs({"a": "1"})


@pytest.fixture
def github():
    with GitHubServer() as server:
        server.add_token("ghs_write")
        server.add_token("ghs_read", read_only=True)
        server.add_repo(REPO)
        server.add_pull(REPO, 7, title="t", head="feat")
        yield server


def test_comment_is_created_once_then_edited(github):
    first = upsert_comment(api_url=github.url, token="ghs_write", repository=REPO, number=7, body="one")
    second = upsert_comment(api_url=github.url, token="ghs_write", repository=REPO, number=7, body="two")
    assert (first.action, second.action) == ("created", "updated")
    assert first.id == second.id
    [comment] = github.comments(REPO, 7)
    assert comment.body == f"{COMMENT_MARKER}\ntwo" and comment.edits == 1
    calls = [(r.method, r.path) for r in github.state.requests]
    assert calls.count(("POST", f"/repos/{REPO}/issues/7/comments")) == 1
    assert ("PATCH", f"/repos/{REPO}/issues/comments/{first.id}") in calls
    assert all(r.token == "ghs_write" for r in github.state.requests)


def test_a_look_alike_comment_by_someone_else_is_not_the_one_edited(github):
    from testing.github_server import BOT

    github.add_comment(REPO, 7, f"{COMMENT_MARKER} planted", user={"login": "mallory", "id": 9, "type": "User"})
    mine = github.add_comment(REPO, 7, f"{COMMENT_MARKER}\nold", user=BOT)
    result = upsert_comment(api_url=github.url, token="ghs_write", repository=REPO, number=7, body="new")
    assert result.action == "updated" and result.id == mine.id
    assert [c.body for c in github.comments(REPO, 7)] == [f"{COMMENT_MARKER} planted", f"{COMMENT_MARKER}\nnew"]


def test_a_read_only_token_gets_a_sentence_not_a_traceback(github):
    with pytest.raises(FlowshipError, match=r"403 .*pull-requests: write.*forks"):
        upsert_comment(api_url=github.url, token="ghs_read", repository=REPO, number=7, body="x")
    assert github.comments(REPO, 7) == []

"""GitHub Actions plumbing: the run's context, step outputs, the job summary, and
the one pull-request comment that is created once and then edited in place.

The comment goes through PyGithub (`base_url` is `$GITHUB_API_URL`, so GitHub
Enterprise and the tests' local server work the same). Outputs and the
summary are files GitHub gives the step; nothing here prints.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flowship.config import Environment
from flowship.errors import FlowshipError
from flowship.redact import redact

# The hidden marker that finds flowship's own comment among a pull request's comments.
COMMENT_MARKER = "<!-- flowship:preview -->"


@dataclass(frozen=True)
class Context:
    """The parts of the Actions context flowship uses (all optional outside Actions)."""

    repository: str | None = None  # owner/name
    server_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    run_id: str | None = None
    output: str | None = None  # $GITHUB_OUTPUT
    summary: str | None = None  # $GITHUB_STEP_SUMMARY

    @classmethod
    def from_env(cls, env: Environment) -> Context:
        g = env.github
        return cls(
            repository=g.get("GITHUB_REPOSITORY") or None,
            server_url=(g.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            api_url=env.github_api_url.rstrip("/"),
            run_id=g.get("GITHUB_RUN_ID") or None,
            output=g.get("GITHUB_OUTPUT") or None,
            summary=g.get("GITHUB_STEP_SUMMARY") or None,
        )

    @property
    def repository_url(self) -> str | None:
        return f"{self.server_url}/{self.repository}" if self.repository else None

    @property
    def run_url(self) -> str | None:
        if self.repository and self.run_id:
            return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"
        return None


def format_outputs(outputs: Mapping[str, str]) -> str:
    """`$GITHUB_OUTPUT` text: every value in the multiline form with a random delimiter.

    A value (a plan naming a crafted branch) can then never end the value
    early or smuggle in another output, whatever lines it contains.
    """
    parts = []
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:  # astronomically unlikely; still, never ambiguous
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(parts)


def write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    if path:
        _append(path, format_outputs({k: redact(v) for k, v in outputs.items()}), "$GITHUB_OUTPUT")


def write_summary(path: str | None, markdown: str) -> None:
    if path:
        markdown = redact(markdown)
        _append(path, markdown if markdown.endswith("\n") else markdown + "\n", "$GITHUB_STEP_SUMMARY")


def _append(path: str, text: str, what: str) -> None:
    try:
        with Path(path).open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise FlowshipError(f"cannot write {what} ({path}): {exc.strerror}.") from None


@dataclass(frozen=True)
class CommentResult:
    action: Literal["created", "updated"]
    id: int
    url: str


def github_client(api_url: str, token: str, **options: Any) -> Any:
    """A PyGithub client as flowship makes one (the comment, GitHub Deployments, pull states).

    PyGithub's logger is quieted: it writes retries to stderr past the
    console's redaction and command guard, and flowship reports failures
    itself. Its pauses are off, before every request (0.25 s) and between
    writes (1 s): a run makes about ten requests one after another, four of
    them writes, and the pauses were ~3 s of a pull request's run
    (scripts/bench/bench_e2e.py). GitHub's advice to space writes by a second
    is for many writes in a row; its secondary limit is 80 content-creating
    requests a minute, twenty runs' worth, and a run that meets it is told
    so by GitHub (a warning here, never a failed deploy).
    """
    from github import Auth, Github

    logging.getLogger("github").setLevel(logging.ERROR)
    return Github(auth=Auth.Token(token), base_url=api_url, user_agent="flowship", seconds_between_requests=None,
                  seconds_between_writes=None, **options)


def upsert_comment(
    *, api_url: str, token: str, repository: str, number: int, body: str, marker: str = COMMENT_MARKER
) -> CommentResult:
    """Create flowship's comment on pull request `number`, or edit the one already there.

    The comment is found by `marker` (a hidden HTML comment in the body), so
    every push edits the same comment instead of adding another. Anyone can
    paste the marker, so only a comment by the token's own user counts: a
    look-alike is never edited (it could not be: 403) and never blocks ours.
    Every failure, whatever PyGithub raised, is a `FlowshipError`: a missing
    comment must never cost the summary and outputs.
    """
    from github import GithubException

    body = redact(body)
    if marker not in body:
        body = f"{marker}\n{body}"
    gh = None
    try:
        gh = github_client(api_url, token)
        login = _own_login(gh)
        pull = gh.get_repo(repository).get_pull(number)
        mine = next((c for c in pull.get_issue_comments()
                     if marker in (c.body or "") and c.user is not None and c.user.login == login), None)
        if mine is not None:
            mine.edit(body)
            return _result("updated", mine)
        return _result("created", pull.create_issue_comment(body))
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        if exc.status in (401, 403):
            raise FlowshipError(
                f"GitHub refused to comment on pull request #{number} ({exc.status} {message or ''}). "
                "Give the job `pull-requests: write`; pull requests from forks only get a read-only token."
            ) from None
        raise FlowshipError(f"the GitHub API failed while commenting on #{number}: {exc.status} {message or exc}.") from None
    except FlowshipError:
        raise
    except Exception as exc:  # e.g. a 200 whose body is not what GitHub sends (a proxy's page)
        why = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
        raise FlowshipError(f"the GitHub API answered unexpectedly while commenting on #{number} ({why}).") from None
    finally:
        if gh is not None:
            gh.close()


def _result(action: Literal["created", "updated"], comment: Any) -> CommentResult:
    # A 200 whose body was not a comment gives an object without these.
    if not isinstance(comment.id, int) or not isinstance(comment.html_url, str):
        raise FlowshipError("GitHub's answer was not a comment (no id or html_url).")
    return CommentResult(action, comment.id, comment.html_url)


# Who comments with an Actions `GITHUB_TOKEN`. Such an installation token may
# not call GET /user (403), so its comments are known by this login instead.
ACTIONS_LOGIN = "github-actions[bot]"


def _own_login(gh: Any) -> str:
    """The login whose comments flowship may edit: the token's own user."""
    from github import GithubException

    try:
        login = gh.get_user().login
    except GithubException as exc:
        if exc.status != 403:
            raise
        return ACTIONS_LOGIN
    if not isinstance(login, str) or not login:
        raise FlowshipError("GitHub's GET /user named no login for the token.")
    return login

"""GitHub Actions plumbing: the run's context, step outputs, the job summary, and
the one pull-request comment that is created once and then edited in place.

The comment goes through PyGithub (`base_url` is `$GITHUB_API_URL`, so GitHub
Enterprise and the tests' local server work the same). Outputs and the
summary are files GitHub gives the step; nothing here prints.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


def upsert_comment(
    *, api_url: str, token: str, repository: str, number: int, body: str, marker: str = COMMENT_MARKER
) -> CommentResult:
    """Create flowship's comment on pull request `number`, or edit the one already there.

    The comment is found by `marker` (a hidden HTML comment in the body), so
    every push edits the same comment instead of adding another.
    """
    from github import Auth, Github, GithubException

    body = redact(body)
    if marker not in body:
        body = f"{marker}\n{body}"
    gh = Github(auth=Auth.Token(token), base_url=api_url, user_agent="flowship")
    try:
        pull = gh.get_repo(repository).get_pull(number)
        marked = [c for c in pull.get_issue_comments() if marker in (c.body or "")]
        # Anyone can paste the marker into a comment; a bot's (the Actions
        # token's) is ours, so prefer it to a look-alike we could not edit.
        mine = next((c for c in marked if c.user and c.user.type == "Bot"), marked[0] if marked else None)
        if mine is not None:
            mine.edit(body)
            return CommentResult("updated", mine.id, mine.html_url)
        created = pull.create_issue_comment(body)
        return CommentResult("created", created.id, created.html_url)
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        if exc.status in (401, 403):
            raise FlowshipError(
                f"GitHub refused to comment on pull request #{number} ({exc.status} {message or ''}). "
                "Give the job `pull-requests: write`; pull requests from forks only get a read-only token."
            ) from None
        raise FlowshipError(f"the GitHub API failed while commenting on #{number}: {exc.status} {message or exc}.") from None
    finally:
        gh.close()

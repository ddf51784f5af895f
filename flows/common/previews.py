"""Where the live branches come from; which previews are stale is flowship's own rule.

`stale_previews` (with `PreviewDeployment` and `Stale`) is
`flowship.previews`', the rule `flowship prune` applies (shipped in every
code image), re-exported
here so this meta flow and the CLI decide with the same code. It never
returns a deployment that is not tagged both `flowship` and `scope:preview`,
nor one tagged `scope:main`. The sources (`git ls-remote`, the GitHub API)
are the only parts that touch the network.
"""

from __future__ import annotations

import subprocess

from flowship.previews import PREVIEW_TAGS, PreviewDeployment, Stale, stale_previews

__all__ = ["PREVIEW_TAGS", "PreviewDeployment", "Stale", "git_live_branches", "github_live_branches", "stale_previews"]


def git_live_branches(url: str) -> set[str]:
    """Branch names of the repository at `url` (any URL or path git accepts), by `git ls-remote`."""
    out = subprocess.run(
        ["git", "ls-remote", "--heads", url], check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    return {line.split("\t", 1)[1].removeprefix("refs/heads/") for line in out.splitlines() if "\t" in line}


def github_live_branches(repository: str, token: str | None, api_url: str = "https://api.github.com") -> tuple[set[str], set[int]]:
    """Branch names and open pull request numbers of `owner/name`, from the GitHub API."""
    from github import Auth, Github

    auth = Auth.Token(token) if token else None
    with Github(auth=auth, base_url=api_url) as gh:
        repo = gh.get_repo(repository)
        branches = {b.name for b in repo.get_branches()}
        prs = {p.number for p in repo.get_pulls(state="open")}
    return branches, prs

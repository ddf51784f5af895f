"""Which preview deployments are stale, and where the live branches come from.

`stale_previews` is pure: deployments, live branch names and open pull
requests in, the stale previews out, each with its reason. It never returns a
deployment that is not tagged both `flowship` and `scope:preview`, nor one
tagged `scope:main`. The sources (`git ls-remote`, the GitHub API) are the
only parts that touch the network.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from flowship.scope import branch_slug

PREVIEW_TAGS = frozenset({"flowship", "scope:preview"})


@dataclass(frozen=True)
class PreviewDeployment:
    """What cleanup needs to know about one deployment."""

    id: str
    flow_name: str
    name: str  # the deployment's own name: the scope (`main` or a slug)
    tags: frozenset[str]
    branch: str | None = None  # the full branch name, where the server kept version_info

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def _tag(self, prefix: str) -> str | None:
        values = [t[len(prefix):] for t in self.tags if t.startswith(prefix)]
        return values[0] if len(values) == 1 else None  # two values: ambiguous, treat as unknown

    @property
    def slug(self) -> str | None:
        return self._tag("branch:")

    @property
    def pr(self) -> int | None:
        value = self._tag("pr:")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def is_preview(self) -> bool:
        """Tagged as a flowship preview, not as main, and not named like main."""
        return PREVIEW_TAGS <= self.tags and "scope:main" not in self.tags and self.name != "main" and self.slug != "main"


@dataclass(frozen=True)
class Stale:
    deployment: PreviewDeployment
    reason: str


def stale_previews(
    deployments: Iterable[PreviewDeployment], live_branches: Iterable[str], open_prs: Iterable[int] | None = None
) -> list[Stale]:
    """The previews whose branch is gone or whose pull request is closed.

    `open_prs=None` means "unknown" (a git source cannot tell): pull requests
    are then not checked. An empty `live_branches` is refused: every
    repository has its default branch, so an empty list means the lookup
    failed, and treating it as truth would remove every preview.
    """
    live = {b.removeprefix("refs/heads/") for b in live_branches}
    if not live:
        raise ValueError("no live branches were found; refusing to treat every preview as stale")
    live_slugs = {branch_slug(b) for b in live}
    prs = None if open_prs is None else set(open_prs)
    stale = []
    for d in deployments:
        if not d.is_preview or d.slug is None:
            continue  # main, foreign or unidentifiable deployments are never candidates
        if d.pr is not None and prs is not None:
            # A pull request decides for its previews: open keeps them (even
            # when its head branch lives in a fork), closed removes them.
            if d.pr not in prs:
                stale.append(Stale(d, f"pull request #{d.pr} is closed"))
        elif (d.branch not in live) if d.branch else (d.slug not in live_slugs):
            stale.append(Stale(d, f"branch {d.branch or d.slug!r} no longer exists"))
    return sorted(stale, key=lambda s: s.deployment.full_name)


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

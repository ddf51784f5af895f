"""The preview rule: which preview deployments are stale (pull request closed, branch gone, or idle).

Pure and standard-library only, so it ships in every code image beside the
declaration API (images/source.RUNTIME_FILES): the `cleanup-previews` meta
flow decides in its own image with exactly the rule `flowship prune` applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flowship.scope import MAIN, branch_slug

__all__ = ["PREVIEW_TAGS", "PreviewDeployment", "Stale", "stale_previews"]

PREVIEW_TAGS = frozenset({"flowship", "scope:preview"})
@dataclass(frozen=True)
class PreviewDeployment:
    """What the preview rule needs to know about one deployment."""

    id: str
    flow_name: str
    name: str  # the deployment's own name: the scope (`main` or a slug)
    tags: frozenset[str]
    branch: str | None = None  # the full branch name, where the server kept version_info
    updated: datetime | None = None  # when it was last written

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
        return PREVIEW_TAGS <= self.tags and "scope:main" not in self.tags and self.name != MAIN and self.slug != MAIN


@dataclass(frozen=True)
class Stale:
    deployment: PreviewDeployment
    reason: str


def stale_previews(
    deployments: Iterable[PreviewDeployment], live_branches: Iterable[str] | None,
    open_prs: Iterable[int] | None = None, *, older_than: datetime | None = None,
) -> list[Stale]:
    """The previews whose pull request is closed, whose branch is gone, or not updated since `older_than`.

    `open_prs=None` means "unknown" (a git source cannot tell): pull requests
    are then not checked; `live_branches=None` likewise skips the branch
    check. An empty `live_branches` is refused: every repository has its
    default branch, so an empty list means the lookup failed, and treating it
    as truth would remove every preview.
    """
    live = None if live_branches is None else {b.removeprefix("refs/heads/") for b in live_branches}
    if live is not None and not live:
        raise ValueError("no live branches were found; refusing to treat every preview as stale")
    live_slugs = {branch_slug(b) for b in live or ()}
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
                continue
        elif live is not None and ((d.branch not in live) if d.branch else (d.slug not in live_slugs)):
            stale.append(Stale(d, f"branch {d.branch or d.slug!r} no longer exists"))
            continue
        if older_than is not None and d.updated is not None and d.updated < older_than:
            stale.append(Stale(d, f"not updated since {d.updated:%Y-%m-%d}"))
    return sorted(stale, key=lambda s: s.deployment.full_name)

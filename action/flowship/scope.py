"""Scopes, branch slugs, deployment names and tags (docs/design.md's contract).

A scope is where a set of deployments lives: `main` for the default branch,
or a branch slug for previews. The slug is injective: two different branch
names never share one, and `main` is never the slug of a preview.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

SLUG_MAX = 40
HASH_LEN = 8
MAIN = "main"
_CLEAN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# A clean name that already ends like a hash suffix could collide with the
# slug of a lossy name, so such names get a hash of their own too.
_HASH_TAIL = re.compile(rf"-[0-9a-f]{{{HASH_LEN}}}$")


def branch_slug(branch: str) -> str:
    """Lowercase `[a-z0-9-]`, at most 40 characters, injective over branch names.

    A name that is already a clean slug is kept as it is; any other name
    (truncated, characters dropped or lowercased) ends in a hash of the full
    name, so the slug is stable and never shared.
    """
    if branch.startswith("refs/heads/"):
        branch = branch[len("refs/heads/"):]
    lossless = (
        len(branch) <= SLUG_MAX
        and _CLEAN.match(branch) is not None
        and _HASH_TAIL.search(branch) is None
        and branch != MAIN
    )
    if lossless:
        return branch
    digest = hashlib.sha256(branch.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_LEN]
    stem = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")
    stem = stem[: SLUG_MAX - HASH_LEN - 1].rstrip("-")
    return f"{stem}-{digest}" if stem else f"b-{digest}"


@dataclass(frozen=True)
class Scope:
    """Where deployments go: production (`main`) or a branch preview."""

    kind: Literal["main", "branch"]
    branch: str
    slug: str
    pr: int | None = None

    @classmethod
    def main(cls, branch: str = MAIN) -> Scope:
        return cls(kind="main", branch=branch, slug=MAIN)

    @classmethod
    def preview(cls, branch: str, pr: int | None = None) -> Scope:
        return cls(kind="branch", branch=branch, slug=branch_slug(branch), pr=pr)

    @classmethod
    def for_branch(cls, branch: str, default_branch: str, pr: int | None = None) -> Scope:
        if branch == default_branch and pr is None:
            return cls.main(branch)
        return cls.preview(branch, pr)

    @property
    def is_main(self) -> bool:
        return self.kind == "main"

    @property
    def name(self) -> str:
        """The deployment-name half: `main` or the slug."""
        return MAIN if self.is_main else self.slug

    def tags(self) -> list[str]:
        tags = ["flowship", f"scope:{'main' if self.is_main else 'preview'}", f"branch:{self.slug}"]
        if self.pr is not None:
            tags.append(f"pr:{self.pr}")
        return tags

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "branch": self.branch, "slug": self.slug, "pr": self.pr}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        return cls(kind=data["kind"], branch=data["branch"], slug=data["slug"], pr=data.get("pr"))


def deployment_name(flow_name: str, scope: Scope) -> str:
    """`<flow name>/<scope>`, Prefect's full deployment name."""
    return f"{flow_name}/{scope.name}"


def deployment_tags(scope: Scope, sha: str, *, gpu: bool, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    tags = scope.tags() + [f"sha:{sha[:12]}"]
    if gpu:
        tags.append("gpu")
    tags.extend(t for t in extra if t not in tags)
    return tags

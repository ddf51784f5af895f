"""Choosing the base commit: the one policy for what a plan compares with.

The candidates come from the event (`events.py` builds them: a push's
`before`, a pull request's merge base) and from the scope's record of the
last deployed commit; the first that fits wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from flowship import git
from flowship.config import Config
from flowship.errors import InputError


@dataclass(frozen=True)
class Candidate:
    """A possible base: a commit to compare with, or a commit to take the merge base with."""

    kind: Literal["commit", "merge-base"]
    sha: str
    label: str  # for notes: "the push's previous head", "the merge base with main"


class BaseSource(Protocol):
    """What base selection needs of an event (`events.Event` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def head(self) -> str | None: ...

    @property
    def bases(self) -> Sequence[Candidate]: ...


def resolve_base(
    config: Config, event: BaseSource, last_deployed: str | None, *, record_read: bool = False
) -> tuple[str | None, str]:
    """The commit to compare `event.head` with, and a note saying how it was chosen.

    Prefers the last commit deployed to the event's scope (when it is an
    ancestor of head), then the event's own candidates (a push's `before`, a
    pull request's merge base). A shallow clone is deepened from its remote
    when a candidate is missing; without one, or when nothing fits (a new
    branch, the first commit), the answer is None: plan everything.

    `record_read` says the scope's record was read and `last_deployed` is
    what it holds. An empty record means nothing was deployed in full yet (a
    first deploy that failed partly records nothing): a push's `before` was
    never deployed here, and comparing with it would lose the flows that
    failed. A merge base still bounds a preview.
    """
    if event.head is None:
        raise InputError(f"the {event.name} event names no commit to deploy.")
    candidates = list(event.bases)
    if last_deployed:
        candidates.insert(0, Candidate("commit", last_deployed, "the last deployed commit"))
    elif record_read:
        candidates = [c for c in candidates if c.kind == "merge-base"]
    return choose_base(config.root, event.head, candidates)


def choose_base(root: Any, head: str, candidates: Sequence[Candidate]) -> tuple[str | None, str]:
    if not candidates:
        return None, "there is no earlier commit to compare with (a new branch or the first commit); planning every workflow."
    skipped: list[str] = []
    attempts: list[int | None] = [0]
    if git.is_shallow(root):
        remote = next(iter(git.remotes(root)), None)
        if remote is None:
            found = _first_fit(root, head, candidates, skipped)
            if found:
                return found
            return None, ("this clone is shallow and has no remote to deepen it from; planning every workflow "
                          "(use actions/checkout with fetch-depth: 0).")
        attempts += [100, None]  # deepen a little, then fetch everything
    else:
        remote = None
    for depth in attempts:
        if depth != 0 and remote is not None and git.is_shallow(root):
            git.deepen(root, remote, by=depth, fetch_shas=[c.sha for c in candidates])
        skipped.clear()
        found = _first_fit(root, head, candidates, skipped)
        if found:
            return found
    return None, f"{'; '.join(skipped)}; planning every workflow."


def _first_fit(root: Any, head: str, candidates: Sequence[Candidate], skipped: list[str]) -> tuple[str, str] | None:
    if not git.has_commit(root, head):
        skipped.append(f"the head commit {head[:12]} is not in this clone")
        return None
    for candidate in candidates:
        short = candidate.sha[:12]
        # One rev-parse both checks that the commit is here and gives its full sha.
        sha = git.try_rev_parse(root, candidate.sha) if candidate.sha != git.ZERO_SHA else None
        if sha is None:
            skipped.append(f"{candidate.label} {short} is not in this clone's history")
            continue
        if candidate.kind == "merge-base":
            base = git.merge_base(root, sha, head)
            if base:
                note = " ".join(s + ";" for s in skipped)
                return base, f"{note} comparing with {candidate.label}, {base[:12]}.".strip()
            skipped.append(f"{candidate.label} {short} shares no history with {head[:12]}")
        elif git.is_ancestor(root, sha, head):
            note = " ".join(s + ";" for s in skipped)
            return sha, f"{note} comparing with {candidate.label}, {short}.".strip()
        else:
            skipped.append(f"{candidate.label} {short} is not an ancestor of {head[:12]} (a force push or a rollback)")
    return None

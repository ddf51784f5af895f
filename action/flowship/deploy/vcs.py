"""The few git questions deploying asks, answered through `flowship.git`.

`flowship.git` is the one module that runs git; deploying adds two small
questions on top of it (a commit's subject, a commit's tree
on disk) and a three-valued ancestry test: "I cannot tell" (a commit
missing from a shallow or rewritten clone) must not read as "older".
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from flowship import console, git
from flowship.errors import FlowshipError, InputError


def is_ancestor(root: Path, older: str, newer: str) -> bool | None:
    """True if `older` is an ancestor of (or equal to) `newer`; None when git
    cannot tell because one of them is not in this clone."""
    if not (git.has_commit(root, older) and git.has_commit(root, newer)):
        return None
    return git.is_ancestor(root, older, newer)


def check_rollback(root: Path, ref: str, branch: str, tip: str | None) -> None:
    """A rollback deploys a commit the dispatched branch already had, never another line's.

    It is deployed with force over newer commits and recorded as the scope's
    last deploy, so a commit of an unmerged branch would put code no one
    merged into production; an older commit of the branch (`tip`, its head) is a real rollback.
    """
    sha = git.rev_parse(root, ref)
    if not tip:
        raise InputError(f"cannot check that {sha[:12]} is a commit of {branch}, as GITHUB_SHA does not name "
                         "the branch's head; run the rollback from GitHub Actions.")
    ancestry = is_ancestor(root, sha, tip)
    if ancestry is None:
        raise InputError(f"cannot check that {sha[:12]} is a commit of {branch}, as its head {tip[:12]} is not "
                         "in this clone; fetch the full history (actions/checkout with fetch-depth: 0).")
    if not ancestry:
        raise InputError(f"a rollback deploys a commit of {branch}, and {sha[:12]} is not one (not an ancestor "
                         f"of its head {tip[:12]}); merge it first, or dispatch on the branch that has it.")


def subject(root: Path, sha: str) -> str:
    """The first line of the commit's message."""
    return git.run(root, "log", "-1", "--format=%s", sha, "--").stdout.decode("utf-8", "replace").strip()


def show(root: Path, sha: str, path: str) -> bytes:
    """A file's bytes at a commit (an error naming both when it is not there)."""
    data = git.show(root, sha, path)
    if data is None:
        raise FlowshipError(f"{path} does not exist at commit {sha[:12]}")
    return data


def _inside(skipped: list[str]) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    """tarfile's `data` filter, except that a link it refuses is left out instead of failing the checkout.

    A commit may hold an absolute symlink or one that climbs out of the
    repository (a developer's local convenience); it must not stop every
    flow from deploying, and it must never be followed either.
    """

    def keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError:
            if not (member.issym() or member.islnk()):
                raise
            skipped.append(member.name)
            return None

    return keep


def materialize(root: Path, sha: str, dest: Path) -> Path:
    """The commit's tree (below `root`), exactly, in `dest`; made once and reused.

    Extracted into a sibling temporary folder and renamed into place, so a
    concurrent deploy or a crash never leaves a half-written tree behind.
    """
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    console.info(f"checking out {sha[:12]} into {dest}")
    archive = git.archive(root, sha)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        skipped: list[str] = []
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(work / "tree", filter=_inside(skipped))
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            console.warning(f"left out {len(skipped)} link(s) of {sha[:12]} that point outside the commit: {shown}")
        try:
            (work / "tree").rename(dest)
        except OSError:
            if not dest.is_dir():  # unless another deploy just put the same commit there
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest

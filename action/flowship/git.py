"""The only module that runs git.

Paths come back repo-relative (relative to the directory git runs in, so a
flowship project in a subdirectory of a larger repository works), read from
`-z` output split on NUL so that odd file names survive. Stray `GIT_*`
variables (set by hooks or by a parent git process) are dropped so that git
looks at the repository we name and nothing else. Commands are echoed as
`+ git ...` only when `set_verbose(True)` was called (`--debug`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from flowship import console
from flowship.errors import FlowshipError, InputError

ZERO_SHA = "0" * 40
_state = {"verbose": False}
# Identity and config may be set by the caller's environment (tests set
# GIT_AUTHOR_* and GIT_CONFIG_*); everything else named GIT_* is stray.
_KEEP = {
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "GIT_SSH_COMMAND", "GIT_TERMINAL_PROMPT",
}


def set_verbose(verbose: bool) -> None:
    _state["verbose"] = verbose


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEEP}
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password in CI
    env["LC_ALL"] = "C"  # stable, parseable messages
    return env


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str


def run(root: Path | str, *args: str, input: bytes | None = None, check: bool = True) -> Result:
    argv = ["git", *args]
    if _state["verbose"]:
        console.command(argv)
    try:
        proc = subprocess.run(argv, cwd=root, env=_env(), input=input, capture_output=True)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _cannot_start(root, exc) from None
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if check and proc.returncode != 0:
        if "not a git repository" in stderr:
            raise _not_a_repository(root)
        raise FlowshipError(f"`git {' '.join(args)}` failed: {stderr or f'exit {proc.returncode}'}.")
    return Result(proc.returncode, proc.stdout, stderr)


def _cannot_start(root: Path | str, exc: OSError) -> FlowshipError:
    # A missing working directory raises FileNotFoundError too, naming the directory, not git.
    if isinstance(exc, FileNotFoundError) and exc.filename == "git":
        return FlowshipError("git is not installed or not on PATH; flowship needs git to compare commits.")
    return InputError(f"{root} is not a directory; pass --root the repository's directory.")


def _not_a_repository(root: Path | str) -> InputError:
    return InputError(f"{root} is not inside a git repository; run flowship from a clone.")


def _text(result: Result) -> str:
    return result.stdout.decode("utf-8", "surrogateescape").strip()


def rev_parse(root: Path | str, rev: str) -> str:
    """The full commit sha of `rev`; InputError naming it when git does not know it."""
    sha = try_rev_parse(root, rev)
    if sha is None:
        raise InputError(f"unknown revision {rev!r}: it is not a commit in this repository (a shallow clone may lack it).")
    return sha


def try_rev_parse(root: Path | str, rev: str) -> str | None:
    if not rev or rev.startswith("-"):  # never let a revision become an option
        return None
    result = run(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
    if result.returncode != 0:
        if "not a git repository" in result.stderr:
            raise _not_a_repository(root)
        return None
    return _text(result)


def has_commit(root: Path | str, sha: str) -> bool:
    return bool(sha) and sha != ZERO_SHA and try_rev_parse(root, sha) is not None


def is_ancestor(root: Path | str, ancestor: str, descendant: str) -> bool:
    result = run(root, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        return False  # a missing object (shallow clone): not known to be an ancestor
    return result.returncode == 0


def merge_base(root: Path | str, a: str, b: str) -> str | None:
    result = run(root, "merge-base", a, b, check=False)
    return (_text(result) or None) if result.returncode == 0 else None


def current_branch(root: Path | str) -> str | None:
    """The checked-out branch, or None on a detached HEAD."""
    result = run(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if result.returncode != 0 and "not a git repository" in result.stderr:
        raise _not_a_repository(root)  # not a detached HEAD: there is no HEAD at all
    return (_text(result) or None) if result.returncode == 0 else None


def git_dir(root: Path | str) -> Path:
    """The common git directory (shared by worktrees), absolute."""
    path = Path(_text(run(root, "rev-parse", "--git-common-dir")))
    return path if path.is_absolute() else (Path(root) / path).resolve()


@dataclass(frozen=True)
class Change:
    """One changed path between two commits: A(dded), M(odified), D(eleted), R(enamed), T(ype)."""

    status: str
    path: str
    old_path: str | None = None  # for renames and copies


def diff(root: Path | str, base: str, head: str) -> list[Change]:
    """Changed paths from `base` to `head`, with renames detected (-M)."""
    out = run(
        root, "diff", "--no-ext-diff", "--no-textconv", "--relative", "-M", "--name-status", "-z", base, head, "--"
    ).stdout
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    changes: list[Change] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i][0]
        if status in "RC":
            changes.append(Change(status, fields[i + 2], fields[i + 1]))
            i += 3
        else:
            changes.append(Change(status, fields[i + 1]))
            i += 2
    return changes


def ls_tree(root: Path | str, rev: str, *paths: str) -> dict[str, str]:
    """Every file of a commit (below the directory git runs in, or below `paths`): path -> blob sha."""
    return {path: sha for path, (_mode, sha) in ls_tree_modes(root, rev, *paths).items()}


SYMLINK_MODE = "120000"


def ls_tree_modes(root: Path | str, rev: str, *paths: str) -> dict[str, tuple[str, str]]:
    """Every file of a commit: path -> (git mode, blob sha); a symlink's mode is `SYMLINK_MODE`."""
    if rev.startswith("-"):
        raise InputError(f"unknown revision {rev!r}.")
    out = run(root, "ls-tree", "-r", "-z", rev, *(("--", *paths) if paths else ())).stdout
    files: dict[str, tuple[str, str]] = {}
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split(" ")
        if kind == "blob":  # submodules are commits, not files
            files[path] = (mode, sha)
    return files


class Commit:
    """One commit's files below the directory git runs in (or below `paths`): listed once
    with `git ls-tree`, read lazily, many at a time. Planning, images and deploying all
    read commits through this one shape."""

    def __init__(self, root: Path | str, sha: str, *paths: str):
        self.root = Path(root)
        self.sha = sha
        self.entries = ls_tree_modes(root, sha, *paths)  # path -> (git mode, blob sha)
        self._read: dict[str, bytes | None] = {}

    @classmethod
    def at(cls, root: Path | str, rev: str, *paths: str) -> Commit:
        return cls(root, rev_parse(root, rev), *paths)

    @property
    def blobs(self) -> dict[str, str]:
        """path -> blob sha."""
        return {path: blob for path, (_mode, blob) in self.entries.items()}

    @property
    def files(self) -> list[str]:
        return sorted(self.entries)

    def read(self, path: str) -> bytes | None:
        """One file's bytes, or None where the commit has no such file."""
        path = path.strip("/")
        if path not in self._read:
            blob = self.entries[path][1] if path in self.entries else None
            self._read[path] = read_blobs(self.root, [blob]).get(blob) if blob else None
        return self._read[path]

    def committed(self) -> str:
        """The committer's time in UTC, RFC 3339: what is made of this commit is
        dated by it, not by the clock, so the same commit gives the same result."""
        from datetime import datetime, timezone

        seconds = int(run(self.root, "show", "-s", "--format=%ct", self.sha).stdout.decode().strip())
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def archive(self) -> bytes:
        """The commit as a tar (`git archive`: modes and the commit's time kept)."""
        return archive(self.root, self.sha)


def read_blobs(root: Path | str, shas: Iterable[str]) -> dict[str, bytes]:
    """Many blobs in one `git cat-file --batch`; missing ones are left out."""
    return dict(stream_blobs(root, shas))


def stream_blobs(root: Path | str, shas: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """(sha, content) for each blob as `git cat-file --batch` writes it, so the caller works while git reads.

    The names go in from a file (no writer thread, no deadlock on full pipes)
    and the output is read straight from the pipe, a blob at a time.
    """
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return
    argv = ["git", "cat-file", "--batch"]
    if _state["verbose"]:
        console.command(argv)
    with tempfile.TemporaryFile() as names:
        names.write(("\n".join(wanted) + "\n").encode())
        names.seek(0)
        try:
            proc = subprocess.Popen(argv, cwd=root, env=_env(), stdin=names, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise _cannot_start(root, exc) from None
        with proc:
            out = proc.stdout
            assert out is not None and proc.stderr is not None
            _widen(out.fileno())
            for sha in wanted:
                header = out.readline().split()
                if len(header) < 3:  # `<sha> missing`, or git stopped
                    if not header:
                        break
                    continue
                size = int(header[2])
                yield sha, out.read(size)
                out.read(1)  # the newline after the content
            out.read()
            stderr = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise FlowshipError(f"`git cat-file --batch` failed: {stderr or f'exit {proc.returncode}'}.")


def _widen(fd: int) -> None:
    """Let git run ahead of the reader by a megabyte (Linux; the default pipe holds 64 KiB)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def show(root: Path | str, rev: str, path: str) -> bytes | None:
    """One file of one commit, or None where it does not exist there."""
    result = run(root, "cat-file", "blob", f"{rev}:./{path}", check=False)
    return result.stdout if result.returncode == 0 else None


def archive(root: Path | str, rev: str) -> bytes:
    """The commit's files below `root` as a tar, paths relative to `root`.

    `git archive <commit>` run in a subdirectory archives just that folder,
    so a flowship project inside a larger repository gets only its own files;
    modes and the commit's time are kept.
    """
    return run(root, "archive", "--format=tar", rev).stdout


def is_shallow(root: Path | str) -> bool:
    return _text(run(root, "rev-parse", "--is-shallow-repository")) == "true"


def origin_url(root: Path | str) -> str | None:
    """The `origin` remote's URL, None without one."""
    result = run(root, "remote", "get-url", "origin", check=False)
    url = result.stdout.decode("utf-8", "replace").strip()
    return url if result.returncode == 0 and url else None


def remotes(root: Path | str) -> list[str]:
    return [r for r in _text(run(root, "remote")).splitlines() if r]


def fetch(root: Path | str, remote: str, *args: str) -> bool:
    """Best effort: False (with git's reason echoed) when the fetch fails."""
    result = run(root, "fetch", "--quiet", "--no-tags", *args, remote, check=False)
    if result.returncode != 0:
        console.warning(f"git fetch {' '.join(args)} {remote} failed: {result.stderr or result.returncode}")
    return result.returncode == 0


def deepen(root: Path | str, remote: str, *, by: int | None = None, fetch_shas: Sequence[str] = ()) -> bool:
    """Deepen a shallow clone by `by` commits, or unshallow it completely (`by=None`)."""
    args = [f"--deepen={by}"] if by else ["--unshallow"]
    ok = fetch(root, remote, *args)
    for sha in fetch_shas:  # commits outside the branch's history (a PR's base)
        if not has_commit(root, sha):
            fetch(root, remote, sha)
    return ok


def remote_branches(root: Path | str, remote: str = "origin") -> list[str] | None:
    """The branch names `remote` has now (`git ls-remote --heads`); None when it cannot be asked.

    Asked of the remote itself, not read from remote-tracking refs: a CI
    checkout fetches one branch, and a laptop's refs go stale.
    """
    result = run(root, "ls-remote", "--heads", remote, check=False)
    if result.returncode != 0:
        return None
    lines = _text(result).splitlines()
    return [line.split("\t", 1)[1].removeprefix("refs/heads/") for line in lines if "\t" in line]

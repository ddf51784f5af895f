"""The planned commit's files, read from git (never the working tree).

Images are built from the commit the plan names, so a rerun or a rollback
builds exactly that code whatever is checked out. Reading goes through
`flowship.git` (the only module that runs git).
"""

from __future__ import annotations

import fnmatch
import io
import tarfile
from collections.abc import Mapping
from importlib import resources

from flowship.git import Commit  # what this module reads: one commit's files

# Never part of a code image, whatever .dockerignore says (tracked by mistake, or caches).
DEFAULT_EXCLUDES = (
    ".git", ".github", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".hypothesis", "node_modules", ".flowship", ".dockerignore",
)


def excluded(path: str, patterns: tuple[str, ...]) -> bool:
    """gitignore-like: a pattern matches the path or a directory above it; one
    without `/` also matches a name at any depth (`__pycache__`, `*.pyc`)."""
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        prefix, name = "/".join(parts[:i]), parts[i - 1]
        for pattern in patterns:
            if fnmatch.fnmatchcase(prefix, pattern) or ("/" not in pattern and fnmatch.fnmatchcase(name, pattern)):
                return True
    return False


def ignore_patterns(commit: Commit) -> tuple[str, ...]:
    """DEFAULT_EXCLUDES plus the commit's `.dockerignore` (negations `!` are not supported and skipped)."""
    text = (commit.read(".dockerignore") or b"").decode("utf-8", "replace")
    own = [
        line.strip().strip("/").removeprefix("./")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "!"))
    ]
    return DEFAULT_EXCLUDES + tuple(own)


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mtime: float = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755  # what Docker gives the directories a COPY creates
    tar.addfile(info)


# The declaration API flow modules import (`from flowship import Workflow`): pure
# Python with no dependencies, shipped into every code image under `runtime/`.
# scope.py (pure too) gives flows flowship's branch slugs: the cleanup meta flow needs them.
RUNTIME_FILES = ("__init__.py", "workflow.py", "errors.py", "scope.py", "gpu.py", "previews.py", "py.typed")


def runtime_files() -> dict[str, bytes]:
    package = resources.files("flowship")
    return {f"flowship/{name}": package.joinpath(name).read_bytes() for name in RUNTIME_FILES}


def write_code(dst: tarfile.TarFile, commit: Commit, *, code: str, runtime: str) -> None:
    """flowship's runtime under `runtime`, then the commit's files (minus excludes) under `code`.

    The one writer of what a code image holds, for the docker build context and
    for the registry layer alike. Owners are root and times fixed (the runtime's
    zero, the code's the commit's, as git archive gives them), so the same
    commit writes the same bytes.
    """
    patterns = ignore_patterns(commit)
    # mtime 0: the same flowship gives the same files, whatever the commit.
    for name, data in runtime_files().items():
        add_file(dst, f"{runtime}/{name}", data)
    with tarfile.open(fileobj=io.BytesIO(commit.archive())) as src:
        for member in src:
            name = member.name.rstrip("/")
            if member.type == tarfile.XGLTYPE or not name or excluded(name, patterns):
                continue  # the pax header git archive writes (the commit id), and excluded paths
            member.name = f"{code}/{name}"
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def code_context(commit: Commit, dockerfile: str, dockerfile_name: str) -> bytes:
    """A build context: flowship's runtime under `runtime/`, the commit's files
    under `code/` (minus excludes) and the Dockerfile."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        write_code(dst, commit, code="code", runtime="runtime")
        add_file(dst, dockerfile_name, dockerfile.encode())
    return out.getvalue()


def code_layer(commit: Commit, *, code_dir: str, runtime_dir: str) -> bytes:
    """The code image's one layer (an uncompressed tar): what the code
    Dockerfile's COPYs and WORKDIR put in the image, at their absolute paths."""
    code, runtime = code_dir.strip("/"), runtime_dir.strip("/")
    parents = {"/".join(path.split("/")[:i]) for path in (code, runtime) for i in range(1, path.count("/") + 2)}
    parents |= {f"{runtime}/{name.rpartition('/')[0]}" for name in runtime_files() if "/" in name}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for directory in sorted(parents):  # parents first: a layer lists a directory before its files
            add_dir(dst, directory)
        write_code(dst, commit, code=code, runtime=runtime)
    return out.getvalue()


def deps_context(files: Mapping[str, bytes], dockerfile: str, dockerfile_name: str) -> bytes:
    """A build context: the requirements/context files under `deps/` and the Dockerfile.

    mtimes are zero, so the same inputs make the same context bytes.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, data in sorted(files.items()):
            add_file(tar, f"deps/{path}", data)
        add_file(tar, dockerfile_name, dockerfile.encode())
    return out.getvalue()

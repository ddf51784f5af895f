"""Real git repositories in temporary folders (pre-commit's habit)."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Flowship Test",
    "GIT_AUTHOR_EMAIL": "test@flowship.invalid",
    "GIT_COMMITTER_NAME": "Flowship Test",
    "GIT_COMMITTER_EMAIL": "test@flowship.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | GIT_ENV
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Repo:
    """A git repository to write files into and commit, one call a commit."""

    def __init__(self, path: Path, branch: str = "main"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", branch)

    def write(self, files: dict[str, str | None]) -> None:
        """Write (dedented) files; a value of None deletes the file."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                if target.exists():
                    target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")

    def commit(self, files: dict[str, str | None] | None = None, message: str = "change") -> str:
        if files:
            self.write(files)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")

    def git(self, *args: str) -> str:
        return git(self.path, *args)


SEED_FLOW = '''
from prefect import flow
from flowship import AwsEcsImage, AwsEcsMachine, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml),
)

@flow
def {name}(epochs: int = 3) -> float:
    return float(epochs)
'''

CPU_FLOW = '''
from prefect import flow
from flowship import AwsEcsImage, AwsEcsMachine, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(cpu_value=256, memory_value=512, image=AwsEcsImage.base),
    schedules=["0 3 * * *"],
    tags=["etl"],
)

@flow
def {name}(rows: int = 10) -> int:
    return rows
'''


def seed_flow(name: str) -> str:
    return SEED_FLOW.format(name=name)


def cpu_flow(name: str) -> str:
    return CPU_FLOW.format(name=name)

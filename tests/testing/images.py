"""A repository configured to build images into a local registry (tests/images/)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from flowship.changes import make_plan
from flowship.config import load_config
from flowship.images import build_images
from flowship.scope import Scope
from testing.docker import LocalRegistry
from testing.git import Repo, cpu_flow


@dataclass
class Project:
    repo: Repo
    registry: LocalRegistry
    repository: str
    python_image: str

    @property
    def address(self) -> str:
        return f"{self.registry.host}/{self.repository}"

    def pyproject(self, extra: str = "", registry: str | None = None) -> str:
        return (
            "[tool.flowship]\n"
            f'registry = "{registry or self.address}"\n'
            "[tool.flowship.images.base]\n"
            'requirements = ["requirements.txt"]\n'
            f'args = {{ base_image = "{self.python_image}" }}\n'
            + extra
        )

    def seed(self, files: dict[str, str] | None = None) -> str:
        return self.repo.commit({
            "pyproject.toml": self.pyproject(),
            # Satisfied by the base image; PIP_NO_INDEX=1 there keeps the build offline.
            "requirements.txt": "packaging\n",
            "flows/etl.py": cpu_flow("etl"),
            "shared/helpers.py": "ROWS = 10\n",
        } | (files or {}))

    def plan(self, base: str | None = None):
        config = load_config(self.repo.path, os.environ)
        return config, make_plan(config, scope=Scope.main(), base=base, everything=base is None)

    def build(self, base: str | None = None, **kwargs):
        config, plan = self.plan(base)
        return plan, build_images(config, plan, **kwargs)

"""Picking a target: the one place that knows both (commands compose the stages)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowship.config import Config
from flowship.errors import InputError

if TYPE_CHECKING:  # Prefect loads only when a target is made
    from flowship.deploy import Target

TARGETS = ("local", "ecs")


def make_target(config: Config, name: str) -> Target:
    """The target called `name` ("local" or "ecs"), built from `config`."""
    if name == "local":
        from flowship.deploy.local import LocalTarget

        return LocalTarget(config)
    if name == "ecs":
        # Imported lazily: boto3 and prefect-aws load only when deploying to ECS.
        from flowship.ecs import EcsTarget

        return EcsTarget(config)
    raise InputError(f"unknown target {name!r}; use one of: {', '.join(TARGETS)}.")

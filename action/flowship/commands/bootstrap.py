"""`flowship bootstrap [--target ecs|local]`: create what deploying needs, explain the rest."""

from __future__ import annotations

import argparse

from flowship import console
from flowship.config import Config


def run(config: Config, args: argparse.Namespace) -> int:
    from flowship.ecs import bootstrap

    target = getattr(args, "target", "ecs")
    with console.group(f"bootstrap ({target})"):
        steps = bootstrap.bootstrap_ecs(config) if target == "ecs" else bootstrap.bootstrap_local(config)
    return bootstrap.report(steps)

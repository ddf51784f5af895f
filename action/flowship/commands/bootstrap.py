"""`flowship bootstrap [--target ecs|local]`: create what deploying needs.

For the ECS target it deploys flowship's whole AWS stack (CloudFormation, a
change set shown first; `--stack NAME` names it), then the work pool, then
prints or `--write`s the `[tool.flowship.aws]` table from the stack's outputs.
With `--no-stack` it creates what it can by API and explains the rest
(infrastructure a team owns).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from flowship import console
from flowship.args import key_values
from flowship.config import Config
from flowship.errors import InputError


def run(config: Config, args: argparse.Namespace) -> int:
    from flowship.ecs import bootstrap

    target = getattr(args, "target", "ecs")
    named = getattr(args, "stack", None) is not None or getattr(args, "template", False)
    if getattr(args, "no_stack", False) and named:
        raise InputError("--no-stack is infrastructure of your own; it takes no --stack or --template.")
    if target != "ecs" and named:
        raise InputError("--stack and --template are for --target ecs.")
    # The stack is how a team gets everything the ECS target needs; --no-stack is for
    # infrastructure it already owns (docs/ecs.md).
    if target == "ecs" and not getattr(args, "no_stack", False):
        if getattr(args, "template", False):
            from flowship.ecs.stack import render

            sys.stdout.write(render(config))
            return 0
        return _stack(config, args)
    with console.group(f"bootstrap ({target})"):
        steps = bootstrap.bootstrap_ecs(config) if target == "ecs" else bootstrap.bootstrap_local(config)
    return bootstrap.report(steps)


def _confirm(yes: bool) -> Callable[[list[str]], bool]:
    def confirm(lines: list[str]) -> bool:
        console.info("the change set:")
        for line in lines:
            console.info(f"  {line}")
        if yes:
            return True
        if not sys.stdin.isatty():
            console.error("not applied: run again with --yes to apply without asking (CI), or in a terminal to answer.")
            return False
        return input("apply these changes? [y/N] ").strip().lower() in ("y", "yes")

    return confirm


def _stack(config: Config, args: argparse.Namespace) -> int:
    from flowship.ecs import bootstrap, settings
    from flowship.ecs.bootstrap_stack import deploy_stack

    with console.group(f"bootstrap (ecs, stack {args.stack or config.aws.cluster})"):
        result = deploy_stack(config, args.stack or config.aws.cluster, key_values(args.parameter, "--parameter", "ClusterName=ml"),
                              confirm=_confirm(args.yes))
        if result is None:
            return 1
        code = bootstrap.report(result.steps)
    if args.write:
        path = settings.write(result.config)
        console.info(f"wrote [tool.flowship.aws] into {path}")
    else:
        console.info("the configuration for pyproject.toml (or run again with --write):")
        sys.stdout.write(settings.table(result.config))
    return code

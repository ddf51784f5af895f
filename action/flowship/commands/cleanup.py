"""`flowship cleanup --branch NAME`: delete that branch's previews, never main."""

from __future__ import annotations

import argparse

from flowship import console
from flowship.config import Config
from flowship.commands.targets import make_target
from flowship.deploy import cleanup_branch
from flowship.errors import EXIT_FAILURE, EXIT_OK


def run(config: Config, args: argparse.Namespace) -> int:
    target = make_target(config, args.target)
    with console.group(f"Clean up the previews of {args.branch} ({target.name})"):
        result = cleanup_branch(config, args.branch, target)
    if result.deleted:
        console.info(f"deleted {len(result.deleted)} preview deployment(s) of {args.branch} (branch:{result.slug}).")
    elif result.ok:
        console.info(f"{args.branch} has no preview deployments (branch:{result.slug}); nothing to do.")
    if not result.ok:
        console.error(f"{len(result.failed)} preview deployment(s) of {args.branch} could not be deleted.")
        return EXIT_FAILURE
    return EXIT_OK

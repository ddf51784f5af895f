"""`flowship prune [--dry-run]`: remove orphaned deployments and closed or stale previews."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from functools import partial

from flowship import console, git
from flowship.changes import make_plan
from flowship.commands.targets import make_target
from flowship.config import Config
from flowship.deploy.prune import OpenPulls, PruneResult, prune
from flowship.errors import EXIT_FAILURE, EXIT_OK
from flowship.scope import Scope


def declared_flows(config: Config, sha: str) -> Collection[str] | None:
    """The flow names `sha` declares; None when a declaration problem may hide one."""
    plan = make_plan(config, scope=Scope.main(config.default_branch), head=sha, everything=True)
    return None if plan.problems else {w.name for w in plan.workflows}


def open_pulls(config: Config) -> OpenPulls | None:
    """GitHub's answer to "which of these pull requests are open", where a token and repository are known."""
    repository = config.env.github.get("GITHUB_REPOSITORY")
    token = config.env.github_token
    if not (token and repository):
        return None

    def ask(numbers: list[int]) -> Collection[int] | None:
        from flowship.actions.pulls import open_pulls as asked

        return asked(api_url=config.env.github_api_url, token=token, repository=repository, numbers=numbers)

    return ask


def sweep(config: Config, target_name: str, *, dry_run: bool) -> PruneResult:
    """The whole sweep from this checkout: what `flowship prune` and the cleanup-previews flow run."""
    branches = git.remote_branches(config.root) if "origin" in git.remotes(config.root) else None
    return prune(config, make_target(config, target_name), live_branches=branches, open_prs=open_pulls(config),
                 declared_flows=partial(declared_flows, config), dry_run=dry_run)


def run(config: Config, args: argparse.Namespace) -> int:
    with console.group("Prune: orphaned deployments, closed and stale previews" + (" (dry run)" if args.dry_run else "")):
        result = sweep(config, args.target, dry_run=args.dry_run)
    for note in result.notes:
        console.info(f"note: {note}")
    if args.dry_run:
        console.info(f"would remove {len(result.candidates)} deployment(s); nothing was written.")
    else:
        console.info(f"removed {len(result.removed)} of {len(result.candidates)} deployment(s).")
    if not result.ok:
        console.error(f"{len(result.failed)} deployment(s) could not be removed.")
        return EXIT_FAILURE
    return EXIT_OK

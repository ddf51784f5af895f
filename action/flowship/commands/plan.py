"""`flowship plan`: what a commit range deploys, deletes and builds, and why.

Without `--base`, the base is the last commit deployed to the scope as the
Prefect server recorded it (only then is Prefect imported); for a preview
without one, the merge base with the default branch (what its pull request
would compare with); else everything.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from flowship import console, git
from flowship.changes import Candidate, make_plan, resolve_base
from flowship.config import Config
from flowship.errors import InputError
from flowship.plan import Plan
from flowship.scope import Scope

def run(config: Config, args: argparse.Namespace) -> int:
    plan = plan_from_args(config, args)
    if getattr(args, "json", False):
        print(plan.dumps())
    print_plan(plan)
    return plan.exit_code()


def scope_from_args(config: Config, args: argparse.Namespace) -> Scope:
    branch = getattr(args, "branch", None) or git.current_branch(config.root)
    if branch is None:
        raise InputError("HEAD is detached, so there is no branch to name the deployments after; pass --branch NAME.")
    return Scope.for_branch(branch, config.default_branch, getattr(args, "pr", None))


def plan_from_args(config: Config, args: argparse.Namespace) -> Plan:
    """The plan the `plan` options ask for (`build` and `deploy` use it too)."""
    git.set_verbose(bool(getattr(args, "debug", False)))
    scope = scope_from_args(config, args)
    head = getattr(args, "head", None) or "HEAD"
    base = getattr(args, "base", None)
    everything = bool(getattr(args, "everything", False))
    only = tuple(getattr(args, "only", None) or ())
    if base is None and not everything and not only:
        base = _last_deployed_base(config, scope, head)
    return make_plan(
        config, scope=scope, head=head, base=base, everything=everything, only=only,
        force_rebuild=bool(getattr(args, "force_rebuild", False)),
    )


@dataclass(frozen=True)
class _LocalRange:
    """A run by hand, as base selection sees an event: its head and a branch's merge base."""

    head: str
    bases: tuple[Candidate, ...]
    name: str = "plan"


def _last_deployed_base(config: Config, scope: Scope, head: str) -> str | None:
    last = None
    if config.env.prefect_api_url:
        from flowship.deploy import read_last_deployed

        last = read_last_deployed(config, scope)
    else:
        console.info("no --base and no PREFECT_API_URL to read the last deployed commit from.")
    candidates: list[Candidate] = []
    if not scope.is_main:
        # A CI clone may only have the remote-tracking branch.
        default = git.try_rev_parse(config.root, config.default_branch) or git.try_rev_parse(
            config.root, f"origin/{config.default_branch}"
        )
        if default:
            candidates.append(Candidate("merge-base", default, f"the merge base with {config.default_branch}"))
    # The one policy (changes/base.py): the last deployed commit first, then the merge base.
    source = _LocalRange(git.rev_parse(config.root, head), tuple(candidates))
    base, note = resolve_base(config, source, last, record_read=bool(config.env.prefect_api_url))
    console.info(note)
    return base


def print_plan(plan: Plan, *, title: str | None = None, images: bool = True) -> None:
    """The short table people read: flows, deletions, images (`images`: the target
    builds them; the local target does not), each with its reasons."""
    span = f"{plan.base[:12]}..{plan.head[:12]}" if plan.base else f"everything at {plan.head[:12]}"
    console.info(f"plan for {plan.scope.name} ({span})")
    if not plan.workflows and not plan.delete:
        console.info("  nothing to deploy: no workflow is affected.")
    if plan.workflows:
        width = max(len(w.deployment) for w in plan.workflows)
        console.info("  deploy:")
        for w in plan.workflows:
            console.info(f"    {w.deployment:<{width}}  {w.entrypoint}  <- {_reasons(w.reasons)}")
    if plan.delete:
        console.info("  delete:")
        for d in plan.delete:
            console.info(f"    {d.deployment}")
    if images and plan.images:
        console.info("  images (built by the ecs target):")
        for i in plan.images:
            why = f"rebuild deps <- {_reasons(i.reasons)}" if i.rebuild else "deps unchanged, code layer only"
            console.info(f"    {i.tag}  {why}")
    for problem in plan.problems:
        console.error(problem.message, file=problem.file, line=problem.line, title=title)
    for note in plan.notes:
        console.warning(note, title=title)


def _reasons(reasons: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(reasons[:limit])
    return shown + (f" (+{len(reasons) - limit} more)" if len(reasons) > limit else "")

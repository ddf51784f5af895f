"""`flowship deploy`: converge the Prefect deployments on a plan (`--plan FILE`, or planned here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flowship import console
from flowship.config import Config
from flowship.commands.targets import make_target
from flowship.deploy import STATUSES, DeployResult, deploy_plan
from flowship.deploy.verify import smoked, snapshot, verify
from flowship.errors import InputError
from flowship.plan import Plan


def run(config: Config, args: argparse.Namespace) -> int:
    if args.plan:
        plan = Plan.load(args.plan)
    else:
        from flowship.commands.plan import plan_from_args, print_plan

        plan = plan_from_args(config, args)
        print_plan(plan, images=args.target == "ecs")
    images, failures = load_images(args.images) if args.images else ({}, {})
    target = make_target(config, args.target)
    # The action's `verify` gates main only; a preview is smoke-run when a person asks
    # (this flag, the pull request's label, the dispatch input: docs/deploy.md), and never rolled back.
    verifying = bool(getattr(args, "verify", False)) or (config.env.verify and plan.scope.is_main)
    before = snapshot(config, plan) if verifying and smoked(plan) else None
    title = f"Deploy {len(plan.workflows)} workflow(s), delete {len(plan.delete)}, to {plan.scope.name} ({target.name})"
    with console.group(title):
        result = deploy_plan(config, plan, target, images, force=bool(getattr(args, "force", False)),
                             image_failures=failures)
    print_result(result)
    if before is None:
        return plan.exit_code(failed=not result.ok)
    with console.group(f"Smoke runs of {len(smoked(plan))} workflow(s) on {plan.scope.name}"):
        checked = verify(config, plan, result, before, rollback=not getattr(args, "no_rollback", False),
                         say=console.info)
    for smoke in checked.smokes:
        if not smoke.passed:
            console.error(smoke.line())
    return plan.exit_code(failed=not result.ok or not checked.ok)


def load_images(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """`build --output`'s file: `{"images": {family: ref}, "failed": {family: reason}}`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the images file {path}: {exc.strerror}.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}); write it with `flowship build --output`.") from None
    images, failed = (data.get("images", {}), data.get("failed", {})) if isinstance(data, dict) else (None, None)
    if not isinstance(images, dict) or not isinstance(failed, dict):
        raise InputError(f"{path} is not an images file; write it with `flowship build --output FILE`.")
    return {str(k): str(v) for k, v in images.items()}, {str(k): str(v) for k, v in failed.items()}


def print_result(result: DeployResult) -> None:
    """One line a deployment, then the counts."""
    if result.outcomes:
        width = max(len(o.deployment) for o in result.outcomes)
        console.info(f"{'deployment':<{width}}  {'status':<9}  detail")
        for o in result.outcomes:
            console.info(f"{o.deployment:<{width}}  {o.status:<9}  {o.detail}".rstrip())
    counts = [f"{len(result.named(s))} {s}" for s in STATUSES if result.named(s)]
    summary = ", ".join(counts) if counts else "nothing to do"
    where = f"{result.scope.name} at {result.head[:12]}"
    if result.ok:
        console.info(f"deployed {where}: {summary}.")
        if not result.recorded and result.outcomes:
            console.warning(f"{result.head[:12]} was not recorded as the last deployed commit of {result.scope.name}: "
                            "a newer one is recorded there.")
    else:
        console.error(f"deploying {where} failed for {len(result.failed)} deployment(s): {summary}.")

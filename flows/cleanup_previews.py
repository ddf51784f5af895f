"""Meta flow: remove preview deployments whose branch is gone, whose pull request closed, or that went stale.

flowship's CI removes a preview when its pull request closes; this sweeps up
what that missed (a deleted branch without a pull request, a failed job).
Only deployments tagged `flowship` and `scope:preview` are candidates, each is
checked again right before it is deleted, and anything tagged `scope:main`
is never touched.

Live branches come from `source`:
- `github:OWNER/NAME`: branches and open pull requests from the GitHub API
  (token from the Prefect Secret block `github_token_secret`, else $GITHUB_TOKEN);
- `git:URL`: branches from `git ls-remote --heads URL` (pull requests unchecked);
or directly from `live_branches` (and `open_prs`). `stale_days` also removes
previews not updated for that many days. `only_flows` limits the
sweep to the previews of the flows it names. The decision is
`flowship.previews.stale_previews`, the rule `flowship prune` applies, which
every code image ships beside the declaration API. To sweep on a schedule,
add `schedules=[Cron("0 4 * * *")]` and `parameters={"source": "github:OWNER/NAME"}`
to the declaration below.

With `target` set (`local` or `ecs`), what flowship's target made for each
removed deployment goes too (on ECS: its task definitions), through the same
`Target.cleanup` the CI uses; that needs the repository's pyproject.toml at `root`
and the whole flowship package in the image (code images ship only its
declaration API).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client

from flows.common.previews import (
    PREVIEW_TAGS,
    PreviewDeployment,
    Stale,
    git_live_branches,
    github_live_branches,
    stale_previews,
)
from flowship import AwsEcsImage, AwsEcsMachine, Workflow

workflow = Workflow(
    machine=AwsEcsMachine(cpu_value=256, memory_value=512, image=AwsEcsImage.base),
    tags=["meta"],
    description="Remove preview deployments whose branch is gone or whose pull request is closed.",
)


def _preview(deployment, flow_name: str) -> PreviewDeployment:
    info = deployment.version_info.model_dump() if deployment.version_info else {}
    return PreviewDeployment(
        id=str(deployment.id), flow_name=flow_name, name=deployment.name,
        tags=frozenset(deployment.tags), branch=info.get("branch") or None, updated=deployment.updated,
    )


@task(cache_policy=NO_CACHE)
def read_previews() -> list[PreviewDeployment]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    with get_client(sync_client=True) as client:
        found, offset = [], 0
        while page := client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=sorted(PREVIEW_TAGS))),
            limit=200, offset=offset,
        ):
            found += page
            offset += len(page)
        flows = {d.flow_id: client.read_flow(d.flow_id).name for d in found}
    return [_preview(d, flows[d.flow_id]) for d in found]


@task(cache_policy=NO_CACHE)
def read_live(source: str | None, github_token_secret: str, github_api_url: str) -> tuple[list[str], list[int] | None]:
    if source and source.startswith("github:"):
        branches, prs = github_live_branches(source.removeprefix("github:"), _github_token(github_token_secret), github_api_url)
        return sorted(branches), sorted(prs)
    if source and source.startswith("git:"):
        return sorted(git_live_branches(source.removeprefix("git:"))), None
    raise ValueError(f"source={source!r}: use 'github:OWNER/NAME' or 'git:URL', or pass live_branches")


def _github_token(block: str) -> str | None:
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(block).get())
    except ValueError:  # no such block: fall back to the environment
        return os.environ.get("GITHUB_TOKEN")


@task(cache_policy=NO_CACHE)
def remove(stale: Stale) -> str:
    """Delete one stale preview by id, after reading it again and re-checking its tags."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            current = client.read_deployment(stale.deployment.id)
        except ObjectNotFound:
            return "already gone"
        if not _preview(current, stale.deployment.flow_name).is_preview:
            return "kept: its tags changed"
        try:
            client.delete_deployment(current.id)
        except ObjectNotFound:
            return "already gone"
    return "removed"


@task(cache_policy=NO_CACHE)
def release(removed: list[Stale], target: str, root: str) -> None:
    """Let flowship's target release what it made for each removed preview (ECS task definitions)."""
    try:
        from flowship.config import load_config
        from flowship.commands.targets import make_target
    except ImportError as exc:  # code images ship only flowship's declaration API
        raise RuntimeError(
            f"target={target!r} needs the flowship package in this image ({exc}); "
            "add flowship to the image family's requirements, or leave target unset"
        ) from exc
    from flowship.scope import Scope

    config = load_config(root)
    chosen = make_target(config, target)
    for s in removed:
        d = s.deployment
        chosen.cleanup(d.flow_name, Scope(kind="branch", branch=d.branch or d.slug, slug=d.slug, pr=d.pr))


@flow
def cleanup_previews(
    source: str | None = None,
    live_branches: list[str] | None = None,
    open_prs: list[int] | None = None,
    github_token_secret: str = "github-token",
    github_api_url: str = "https://api.github.com",
    only_flows: list[str] | None = None,
    target: str | None = None,
    root: str = ".",
    dry_run: bool = False,
    stale_days: int | None = None,
) -> dict:
    """Remove the stale previews; returns the full names removed and kept."""
    logger = get_run_logger()
    if live_branches is None:
        live_branches, found_prs = read_live(source, github_token_secret, github_api_url)
        open_prs = found_prs if open_prs is None else open_prs
    previews = [p for p in read_previews() if only_flows is None or p.flow_name in only_flows]
    older_than = datetime.now(timezone.utc) - timedelta(days=stale_days) if stale_days else None
    stale = stale_previews(previews, live_branches, open_prs, older_than=older_than)
    rows, removed = [], []
    for s in stale:
        outcome = "would remove" if dry_run else remove(s)
        if outcome == "removed":
            removed.append(s)
        logger.info("%s: %s (%s)", s.deployment.full_name, outcome, s.reason)
        rows.append({
            "deployment": s.deployment.full_name, "branch": s.deployment.branch or s.deployment.slug,
            "pr": s.deployment.pr, "reason": s.reason, "outcome": outcome,
        })
    if target and removed:
        release(removed, target, root)
    create_table_artifact(
        table=rows or [{"deployment": "-", "outcome": f"all {len(previews)} previews are live"}],
        key="cleanup-previews", description=f"{len(stale)} stale of {len(previews)} previews.",
    )
    stale_names = {s.deployment.full_name for s in stale}
    return {
        "removed": sorted(s.deployment.full_name for s in removed),
        "kept": sorted(p.full_name for p in previews if p.full_name not in stale_names),
        "dry_run": dry_run,
    }

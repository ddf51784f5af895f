"""Meta flow: are flowship's deployments healthy?

Reads the flow runs of the deployments carrying `tags` (by default flowship's
production deployments) and reports, per deployment, runs that failed, ran
late (start time against expected start time) or took much longer than that
deployment's own history (`flows.common.health`). The report is a table
artifact; when any deployment crosses a threshold the flow ends Failed, so a
Prefect automation or notification on failed runs picks it up.

GPU deployments (tagged `gpu`) whose recent runs kept the GPU below
`gpu_util_below` percent utilisation (the `gpu-util:` tags `flowship.gpu`
writes on each run of the `ml` image) are listed in a second artifact,
`gpu-use`, with a suggestion (a CPU machine, or a smaller GPU). That is
advice, not a failure: an idle GPU costs money, not correctness.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed

from flows.common.health import RunRecord, Thresholds, assess
from flowship import AwsEcsImage, AwsEcsMachine, Cron, Workflow
from flowship.gpu import advice

workflow = Workflow(
    machine=AwsEcsMachine(cpu_value=256, memory_value=512, image=AwsEcsImage.base),
    schedules=[Cron("0 7 * * *")],  # daily, over the last 24 hours
    tags=["meta"],
    description="Report deployments whose runs fail, run late or run slow; fails when any does.",
)


def _duration(run) -> float | None:
    if run.total_run_time and run.total_run_time.total_seconds() > 0:
        return run.total_run_time.total_seconds()
    if run.start_time and run.end_time:
        return (run.end_time - run.start_time).total_seconds()
    return None


@task(cache_policy=NO_CACHE)
def read_runs(tags: list[str], history_since: datetime) -> list[RunRecord]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterTags,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
    )

    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=tags)))
        if not deployments:
            return []
        flows = {d.flow_id: client.read_flow(d.flow_id).name for d in deployments}
        names = {d.id: f"{flows[d.flow_id]}/{d.name}" for d in deployments}
        run_filter = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=list(names)),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=history_since),
        )
        runs, offset = [], 0
        while page := client.read_flow_runs(flow_run_filter=run_filter, limit=200, offset=offset):
            runs += page
            offset += len(page)
    return [
        RunRecord(
            deployment=names[r.deployment_id],
            state=r.state_type.value if r.state_type else "UNKNOWN",
            expected_start=r.expected_start_time,
            start=r.start_time,
            duration=_duration(r),
        )
        for r in runs
    ]


@task(cache_policy=NO_CACHE)
def read_gpu_runs(tags: list[str], since: datetime) -> list[tuple[str, list[str]]]:
    """(deployment, run tags) of the runs of GPU deployments since `since`."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterTags,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
    )

    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=sorted({*tags, "gpu"}))))
        if not deployments:
            return []
        names = {d.id: f"{client.read_flow(d.flow_id).name}/{d.name}" for d in deployments}
        run_filter = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=list(names)),
                                   expected_start_time=FlowRunFilterExpectedStartTime(after_=since))
        runs, offset = [], 0
        while page := client.read_flow_runs(flow_run_filter=run_filter, limit=200, offset=offset):
            runs += page
            offset += len(page)
    return [(names[r.deployment_id], list(r.tags)) for r in runs]


@flow
def deployment_health(
    tags: list[str] = ["flowship", "scope:main"],  # noqa: B006 - Prefect copies parameters per run
    lookback_hours: float = 24,
    history_days: float = 30,
    max_failure_rate: float = 0.0,
    late_after_seconds: float = 300,
    slow_factor: float = 3.0,
    min_history: int = 3,
    gpu_util_below: float = 20.0,
    gpu_mem_below: float = 50.0,
):
    """Judge the runs expected in the last `lookback_hours` (history: `history_days`)."""
    now = datetime.now(timezone.utc)
    since = now - timedelta(hours=lookback_hours)
    thresholds = Thresholds(max_failure_rate, late_after_seconds, slow_factor, min_history)
    runs = read_runs(tags, min(since, now - timedelta(days=history_days)))
    report = assess(runs, since, now, thresholds)
    create_table_artifact(
        table=[h.row() for h in report] or [{"deployment": "-", "status": f"no runs in the last {lookback_hours:g}h"}],
        key="deployment-health",
        description=f"Runs of deployments tagged {', '.join(tags)} since {since:%Y-%m-%d %H:%M} UTC.",
    )
    idle = advice(read_gpu_runs(tags, since), util_below=gpu_util_below, mem_below=gpu_mem_below)
    if idle:
        create_table_artifact(
            table=[{"deployment": a.deployment, "runs": a.runs, "gpu util mean %": round(a.util_mean),
                    "gpu memory peak %": round(a.mem_peak), "suggestion": a.suggestion} for a in idle],
            key="gpu-use", description=f"GPU deployments below {gpu_util_below:g}% utilisation since {since:%Y-%m-%d %H:%M} UTC.",
        )
        get_run_logger().warning("GPU left idle:\n%s", "\n".join(f"{a.deployment}: {a.suggestion}" for a in idle))
    unhealthy = [h for h in report if not h.ok]
    summary: dict = {"deployments": len(report), "unhealthy": [h.deployment for h in unhealthy]}
    if idle:
        summary["gpu_idle"] = {a.deployment: a.suggestion for a in idle}
    if unhealthy:
        lines = [f"{h.deployment}: {'; '.join(h.problems)}" for h in unhealthy]
        get_run_logger().error("unhealthy deployments:\n%s", "\n".join(lines))
        return Failed(message=f"{len(unhealthy)} of {len(report)} deployments unhealthy: " + " | ".join(lines), data=summary)
    return Completed(message=f"all {len(report)} deployments healthy", data=summary)

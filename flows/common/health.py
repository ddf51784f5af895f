"""Judging deployments by their recent flow runs: failing, late, or slow for them.

Pure: the health flow turns Prefect flow runs into `RunRecord`s and this
module decides. A run is *late* when it started more than `late_after`
seconds after it was expected to (or has not started that long after); it is
*slow* when it took more than `slow_factor` times the median of the same
deployment's earlier completed runs (once there are `min_history` of them).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

FAILED = {"FAILED", "CRASHED"}
FINISHED = FAILED | {"COMPLETED"}
WAITING = {"SCHEDULED", "PENDING"}


@dataclass(frozen=True)
class RunRecord:
    deployment: str  # `<flow>/<deployment>`
    state: str  # Prefect's state type: COMPLETED, FAILED, CRASHED, RUNNING, SCHEDULED, ...
    expected_start: datetime | None
    start: datetime | None
    duration: float | None  # seconds; for finished runs


@dataclass(frozen=True)
class Thresholds:
    max_failure_rate: float = 0.0  # failed share of finished runs above which a deployment fails
    late_after: float = 300.0  # seconds
    slow_factor: float = 3.0
    min_history: int = 3


@dataclass
class DeploymentHealth:
    deployment: str
    runs: int = 0
    failed: int = 0
    late: int = 0
    slow: int = 0
    worst_delay: float = 0.0  # seconds, of the latest start
    worst_ratio: float | None = None  # slowest run / its history's median
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> dict[str, object]:
        return {
            "deployment": self.deployment,
            "status": "ok" if self.ok else "PROBLEM",
            "runs": self.runs,
            "failed": self.failed,
            "late": self.late,
            "slow": self.slow,
            "worst_delay_s": round(self.worst_delay, 1),
            "worst_slowdown": None if self.worst_ratio is None else round(self.worst_ratio, 2),
            "problems": "; ".join(self.problems),
        }


def assess(runs: Iterable[RunRecord], since: datetime, now: datetime, thresholds: Thresholds = Thresholds()) -> list[DeploymentHealth]:
    """Health of every deployment with a run expected after `since`; earlier runs are history only."""
    by_deployment: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_deployment[run.deployment].append(run)
    report = []
    for name, history in sorted(by_deployment.items()):
        recent = [r for r in history if r.expected_start is not None and r.expected_start >= since]
        if recent:
            report.append(_judge(name, history, recent, now, thresholds))
    return report


def _judge(name: str, history: list[RunRecord], recent: list[RunRecord], now: datetime, t: Thresholds) -> DeploymentHealth:
    health = DeploymentHealth(name, runs=len(recent))
    finished = [r for r in recent if r.state in FINISHED]
    health.failed = sum(r.state in FAILED for r in recent)
    if health.failed and health.failed / max(len(finished), 1) > t.max_failure_rate:
        health.problems.append(f"{health.failed} of {len(finished)} finished runs failed")

    for run in recent:
        delay = _delay(run, now)
        health.worst_delay = max(health.worst_delay, delay)
        if delay > t.late_after:
            health.late += 1
    if health.late:
        health.problems.append(f"{health.late} runs started over {t.late_after:.0f}s late (worst {health.worst_delay:.0f}s)")

    done = sorted(
        (r for r in history if r.state == "COMPLETED" and r.duration is not None and r.start is not None),
        key=lambda r: r.start,
    )
    recent_ids = {id(r) for r in recent}
    for i, run in enumerate(done):
        earlier = [r.duration for r in done[:i]]
        if id(run) not in recent_ids or len(earlier) < t.min_history:
            continue
        median = statistics.median(earlier)
        ratio = run.duration / median if median > 0 else float("inf")
        health.worst_ratio = ratio if health.worst_ratio is None else max(health.worst_ratio, ratio)
        if ratio > t.slow_factor:
            health.slow += 1
    if health.slow:
        health.problems.append(
            f"{health.slow} runs took over {t.slow_factor:g}x their history's median (worst {health.worst_ratio:.1f}x)"
        )
    return health


def _delay(run: RunRecord, now: datetime) -> float:
    if run.expected_start is None:
        return 0.0
    if run.start is not None:
        return max((run.start - run.expected_start).total_seconds(), 0.0)
    if run.state in WAITING:  # not started yet: late by how long it has waited
        return max((now - run.expected_start).total_seconds(), 0.0)
    return 0.0

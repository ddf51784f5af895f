"""What one run of a workflow will cost, estimated: an hourly price × how long its runs take.

The hourly price is the placed GPU instance's (the whole instance: a GPU task
is placed on the smallest capacity that fits it, ecs/placement.py) or
Fargate's vCPU, memory and extra-storage prices for a CPU machine. Prices are
the on-demand table shipped in `ecs/data/prices.toml` (its region and date
say what it is), with `[tool.flowship.aws.prices]` winning over it. The
duration is the median of the deployment's last completed runs in Prefect; a
preview with no runs of its own uses main's runs of the same flow. A
scheduled workflow also gets a monthly figure: the runs its schedules start
in 30 days × the per-run estimate. It is an estimate, not a bill: provisioning
time, data transfer, logs and discounts are not in it.
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any

from flowship.config import Config
from flowship.deploy.client import using
from flowship.deploy.runs import run_times
from flowship.ecs.placement import place
from flowship.errors import FlowshipError
from flowship.plan import Plan, PlannedWorkflow
from flowship.scope import Scope, deployment_name
from flowship.workflow import AwsEcsMachine, Cron, Interval, Schedule

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

MONTH = timedelta(days=30)
FARGATE_STORAGE_INCLUDED = 20  # GiB every Fargate task gets without charge
_MAX_COUNTED = 100_000  # runs a month counted one by one; more is a schedule nobody means


@dataclass(frozen=True)
class Prices:
    instances: Mapping[str, float]
    vcpu_hour: float
    gb_hour: float
    storage_gb_hour: float
    source: str  # e.g. "on-demand, Linux, us-east-1, 2026-06"


@dataclass(frozen=True)
class Estimate:
    deployment: str  # `<flow>/<scope>`
    runs_on: str  # "g5.xlarge", "Fargate 2 vCPU, 4 GiB"
    hourly: float | None  # USD an hour; None: no price for the instance type
    median_seconds: float | None = None  # None: no completed run yet
    runs: int = 0  # completed runs the median is of
    history: str = ""  # whose runs: the deployment's own, or main's (a new preview)
    monthly_runs: int | None = None  # runs the schedules start in 30 days; None: not scheduled
    note: str = ""

    @property
    def per_run(self) -> float | None:
        if self.hourly is None or self.median_seconds is None:
            return None
        return self.hourly * self.median_seconds / 3600

    @property
    def monthly(self) -> float | None:
        per_run = self.per_run
        return None if per_run is None or self.monthly_runs is None else per_run * self.monthly_runs


@dataclass(frozen=True)
class Costs:
    """The estimates of a plan's workflows, and what the prices are (the report says both)."""

    source: str  # e.g. "on-demand, Linux, us-east-1, 2026-06"
    estimates: tuple[Estimate, ...]


def prices(config: Config) -> Prices:
    """The shipped table with pyproject's `[tool.flowship.aws.prices]` over it."""
    data = tomllib.loads(resources.files("flowship.ecs").joinpath("data/prices.toml").read_text())
    own = dict(config.aws.prices)
    fargate = data["fargate"]
    source = data["source"]
    return Prices(
        instances={**data["instances"], **{k: v for k, v in own.items() if not k.startswith("fargate-")}},
        vcpu_hour=own.get("fargate-vcpu-hour", fargate["vcpu-hour"]),
        gb_hour=own.get("fargate-gb-hour", fargate["gb-hour"]),
        storage_gb_hour=own.get("fargate-storage-gb-hour", fargate["storage-gb-hour"]),
        source=f"{source['what']}, {source['region']}, {source['date']}" + (", with pyproject's own prices" if own else ""),
    )


def hourly(config: Config, table: Prices, machine: AwsEcsMachine, workflow: str) -> tuple[str, float | None]:
    """Where `machine` runs and what an hour of it costs (None: the table has no price for it)."""
    if machine.is_gpu:
        instance = place(machine, config.aws.gpu_capacity, workflow=workflow).instance_type
        return instance, table.instances.get(instance)
    vcpu, gib = machine.cpu_value / 1024, machine.memory_value / 1024
    extra = max(0, (machine.storage or FARGATE_STORAGE_INCLUDED) - FARGATE_STORAGE_INCLUDED)
    where = f"Fargate {vcpu:g} vCPU, {gib:g} GiB" + (f", {machine.storage} GiB disk" if extra else "")
    return where, vcpu * table.vcpu_hour + gib * table.gb_hour + extra * table.storage_gb_hour


def runs_per_month(schedules: Sequence[Schedule], now: datetime) -> int | None:
    """How many runs `schedules` start in the 30 days after `now`; None when there is no schedule."""
    if not schedules:
        return None
    total = 0
    for s in schedules:
        if isinstance(s, Interval):
            total += math.floor(MONTH.total_seconds() / s.seconds)
        elif isinstance(s, Cron):
            total += _cron_runs(s, now)
    return total


def _cron_runs(s: Cron, now: datetime) -> int:
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    start = now.astimezone(ZoneInfo(s.timezone))
    end, count = start + MONTH, 0
    # A 6-field cron is Prefect's seconds form; cronsim reads 5 fields.
    for when in CronSim(" ".join(s.cron.split()[:5]), start):
        if when > end or count >= _MAX_COUNTED:
            break
        count += 1
    return count


def estimate(config: Config, plan: Plan, *, client: SyncPrefectClient | None = None,
             now: datetime | None = None) -> Costs:
    """An estimate for each planned workflow, with the run history read from Prefect."""
    table = prices(config)
    now = now or datetime.now(timezone.utc)
    with using(config, client) as opened:
        return Costs(table.source, tuple(_one(config, table, w, opened, now) for w in plan.workflows))


def _one(config: Config, table: Prices, w: PlannedWorkflow, client: Any, now: datetime) -> Estimate:
    try:
        runs_on, price = hourly(config, table, w.machine, w.name)
    except FlowshipError as exc:
        return Estimate(w.deployment, "—", None, note=str(exc))
    note = "" if price is not None else f"no price for {runs_on}: add it to [tool.flowship.aws.prices]"
    monthly_runs = runs_per_month(w.workflow.schedule_list, now)
    history, seconds = "its own", run_times(client, w.deployment)
    main = deployment_name(w.name, Scope.main())
    if not seconds and w.deployment != main:
        history, seconds = "main's", run_times(client, main)
    if not seconds:
        return Estimate(w.deployment, runs_on, price, monthly_runs=monthly_runs, note=note)
    return Estimate(w.deployment, runs_on, price, statistics.median(seconds), len(seconds), history,
                    monthly_runs, note)

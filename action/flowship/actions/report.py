"""What a `flowship ci` run did, rendered for people: the job summary, the PR
comment, and the step outputs.

Everything here is data in, text out. Values people control (branch names,
pull-request titles, flow names, file paths) are escaped for where they go:
backslash-escaped Markdown in prose and tables, a fence longer than any
backtick run around commands, so nothing in them becomes markup, a link, an
HTML tag, a mention or a table cell of its own.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Literal

from flowship.actions.github import COMMENT_MARKER
from flowship.markdown import code_block, escape
from flowship.plan import Plan
from flowship.redact import redact
from flowship.scope import Scope

Status = Literal["created", "updated", "unchanged", "deleted", "skipped", "failed"]
STATUSES: tuple[Status, ...] = ("created", "updated", "unchanged", "deleted", "skipped", "failed")
_ICON = {"created": "🆕", "updated": "🔄", "unchanged": "✅", "deleted": "🗑️", "skipped": "⏭️", "failed": "❌"}


@dataclass(frozen=True)
class DeploymentLine:
    name: str  # `<flow>/<scope>`
    status: Status
    detail: str = ""  # why skipped or failed
    url: str | None = None  # the Prefect UI page of the deployment
    run_url: str | None = None  # the Prefect UI form that starts a run


@dataclass(frozen=True)
class ImageLine:
    family: str
    ref: str | None  # registry/repo@sha256:..., None when it failed
    rebuilt: bool  # the deps image was built (its inputs changed), else reused
    error: str | None = None


@dataclass(frozen=True)
class RunLine:
    deployment: str
    state: str
    url: str | None = None


@dataclass(frozen=True)
class Report:
    title: str  # one line: what this run was, e.g. "Preview of `feat/x` (#12)"
    scope: Scope | None = None
    head: str | None = None
    base: str | None = None
    plan: Plan | None = None
    notes: tuple[str, ...] = ()  # plain sentences: why nothing deployed, fork, dry run
    images: tuple[ImageLine, ...] = ()
    deployments: tuple[DeploymentLine, ...] = ()
    runs: tuple[RunLine, ...] = ()
    problems: tuple[str, ...] = ()  # `file:line: message`
    run_url: str | None = None  # this Actions run
    prefect_ui_url: str | None = None
    pr_title: str | None = None
    links: dict[str, str] = field(default_factory=dict)  # extra named links (the PR comment)


# -- escaping ------------------------------------------------------------------

def md(text: object) -> str:
    """`markdown.escape` of a value someone else chose, redacted first (escaping would hide a secret)."""
    return escape(redact(str(text)))



def _link(text: str, url: str | None) -> str:
    # `url` is built by flowship from configured endpoints and ids, never from
    # user input; the text is escaped.
    return f"[{md(text)}]({url})" if url else md(text)


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "—"


# -- rendering -------------------------------------------------------------------
def summary_markdown(report: Report) -> str:
    """The job summary: what changed and why, images, deployments, runs, problems."""
    out = [f"## flowship: {md(report.title)}", ""]
    if report.scope is not None:
        scope = "production (main)" if report.scope.is_main else f"preview {md(report.scope.slug)}"
        out.append(f"**Scope:** {scope} · **branch:** {md(report.scope.branch)} · "
                   f"**commits:** {md(_short(report.base))} → {md(_short(report.head))}")
        out.append("")
    if report.pr_title is not None:
        out += [f"**Pull request:** {md(report.pr_title)}", ""]
    out.extend(f"> {md(note)}" for note in report.notes)
    if report.notes:
        out.append("")
    out.extend(_changes(report.plan))
    out.extend(_images(report.images))
    out.extend(_deployments(report.deployments))
    out.extend(_runs(report.runs))
    if problems := _problems(report):
        out += ["### Problems", ""] + [f"- {md(p)}" for p in problems] + [""]
    if report.run_url:
        out.append(f"[This run]({report.run_url})")
    return "\n".join(out).rstrip() + "\n"


def comment_markdown(report: Report) -> str:
    """The pull-request comment: the preview's deployments and how to run them."""
    out = [COMMENT_MARKER, f"### flowship preview: {md(report.title)}", ""]
    out.extend(f"> {md(note)}" for note in report.notes)
    if report.notes:
        out.append("")
    if report.head:
        out.append(f"Deployed from commit {md(_short(report.head))}." if report.deployments else
                   f"Planned from commit {md(_short(report.head))}.")
        out.append("")
    live = [d for d in report.deployments if d.status in ("created", "updated", "unchanged")]
    out.extend(_deployments(report.deployments))
    if not report.deployments and report.plan is not None and report.plan.workflows:
        out += ["| Flow | Would deploy | Why |", "| --- | --- | --- |"]
        out += [f"| {md(w.name)} | {md(w.deployment)} | {_reasons(w.reasons)} |" for w in report.plan.workflows]
        out.append("")
    if live and report.scope is not None:
        scope = "main" if report.scope.is_main else report.scope.branch
        commands = "\n".join(
            f"flowship run {shlex.quote(d.name.split('/', 1)[0])} --scope {shlex.quote(scope)}" for d in live
        )
        out += ["Run a preview from a checkout (or with the Prefect UI's *Run* button linked above):", "",
                code_block(commands, "sh"), ""]
    if problems := _problems(report):
        out += ["**Problems:**", ""] + [f"- {md(p)}" for p in problems] + [""]
    if report.run_url:
        out.append(f"<sub>Updated by [this run]({report.run_url}).</sub>")
    return "\n".join(out).rstrip() + "\n"


def _problems(report: Report) -> tuple[str, ...]:
    return report.problems or (report.plan.messages if report.plan else ())


def _reasons(reasons: tuple[str, ...], limit: int = 5) -> str:
    if not reasons:
        return "requested"
    shown = ", ".join(md(r) for r in reasons[:limit])
    return shown + (f" and {len(reasons) - limit} more" if len(reasons) > limit else "")


def _changes(plan: Plan | None) -> list[str]:
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


def _deployments(lines: tuple[DeploymentLine, ...]) -> list[str]:
    if not lines:
        return []
    out = ["| Deployment | Status | |", "| --- | --- | --- |"]
    for d in sorted(lines, key=lambda d: (STATUSES.index(d.status), d.name)):
        extra = md(d.detail) if d.detail else ""
        if d.run_url:
            extra = (extra + " · " if extra else "") + f"[run]({d.run_url})"
        out.append(f"| {_link(d.name, d.url)} | {_ICON[d.status]} {d.status} | {extra} |")
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(d.status == s for d in lines)))
    return ["### Deployments", "", *out, "", counts + ".", ""]


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
        live = [d for d in report.deployments if d.url and d.status in ("created", "updated", "unchanged")]
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

"""`flowship ci`: the whole pipeline for the GitHub event in the environment.

event → base (the last deployed commit, else the event's) → plan → images
(target ecs) → deploy (records the head) → runs → report. Each stage is a
`console.group`. A pull request from a fork, and a dry run, stop after the
plan: a fork's run has no secrets, and nothing of it should get any.
Reporting (summary, outputs, the PR comment) happens whatever happened
before it, so a failed run still says what it did.

Its options come from the environment (the composite action passes its
inputs through `env:` as FLOWSHIP_* variables, read by `flowship.config`);
`--target` and `--dry-run` override them when run by hand.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flowship import console
from flowship.config import Config
from flowship.commands.targets import TARGETS, make_target
from flowship.errors import EXIT_FAILURE, EXIT_OK, FlowshipError, InputError
from flowship.actions import deployments as github_deployments
from flowship.actions.deployments import Tracker
from flowship.actions.github import Context, upsert_comment, write_outputs, write_summary
from flowship.commands.plan import print_plan
from flowship.plan import Plan
from flowship.actions.report import DeploymentLine, ImageLine, Report, RunLine, comment_markdown, outputs, summary_markdown

if TYPE_CHECKING:
    from uuid import UUID

    from flowship.actions.events import DispatchInputs, Event
    from flowship.deploy import DeployResult, Target
    from flowship.deploy.merge import MergePreview
    from flowship.deploy.verify import Before
    from flowship.ecs.costs import Costs

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """What the run was asked to do beyond the event: the action's inputs (from the
    environment), then a manual dispatch's own inputs merged in once (`merged`)."""

    target: str = "ecs"
    flows: tuple[str, ...] = ()
    force_rebuild: bool = False
    run: bool = False  # start a run of each deployed flow
    wait: bool = False  # and follow the runs to their end
    dry_run: bool = False

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> Options:
        env = config.env
        target = overrides.pop("target", None) or env.target or "ecs"
        if target not in TARGETS:
            raise InputError(f"target {target!r} is not one of: {', '.join(TARGETS)}.")
        # The action's `run` input waits, so a failed run fails the step.
        return cls(target=target, flows=env.flows, force_rebuild=env.force_rebuild,
                   run=env.run_after_deploy, wait=env.run_after_deploy, dry_run=env.dry_run, **overrides)

    def merged(self, inputs: DispatchInputs) -> Options:
        """A dispatch's inputs add to the action's: either asking is enough."""
        return replace(self, flows=self.flows or inputs.flows, force_rebuild=self.force_rebuild or inputs.force_rebuild,
                       run=self.run or inputs.run, wait=self.wait or inputs.wait)


@dataclass
class _Run:
    """What the stages found out, for the report."""

    title: str = "nothing to do"
    notes: list[str] = field(default_factory=list)
    plan: Plan | None = None
    images: list[ImageLine] = field(default_factory=list)
    deployments: list[DeploymentLine] = field(default_factory=list)
    runs: list[RunLine] = field(default_factory=list)
    failed: bool = False
    github: Tracker | None = None  # the GitHub deployment in progress, finished by the report
    merge: MergePreview | None = None  # a preview's effect on main if merged
    costs: Costs | None = None  # one run's cost per planned workflow, and what the prices are


def run_ci(config: Config, options: Options) -> int:
    from flowship.actions.events import read_event

    ctx = Context.from_env(config.env)
    with console.group("Event"):
        event = read_event(config.env.github, default_branch=config.default_branch)
        console.info(event.reason)
        if event.pr_title is not None:
            console.info(f"pull request #{event.pr}: {event.pr_title}")  # neutralized: a title is anyone's text
    options = options.merged(event.inputs)
    run = _Run(title=_title(event))
    run.notes.append(event.reason)
    try:
        if event.action == "deploy":
            _deploy(config, options, event, run)
        elif event.action == "cleanup":
            _cleanup(config, options, event, run)
    except FlowshipError as exc:
        # Report what was done so far, then fail the step with the error.
        console.failure(exc)
        run.notes.append(f"Failed: {exc}")
        run.failed = True
        code = exc.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        # A bug, or a cancelled job, still leaves the summary and outputs of what
        # was done; the CLI then reports the error itself.
        what = ("interrupted" if isinstance(exc, KeyboardInterrupt)
                else f"an unexpected error: {type(exc).__name__}: {exc}")
        run.notes.append(f"Failed: {what}.")
        run.failed = True
        _report(config, ctx, event, run)
        raise
    else:
        code = run.plan.exit_code(run.failed) if run.plan else (EXIT_FAILURE if run.failed else EXIT_OK)
    _report(config, ctx, event, run)
    return code


def _title(event: Event) -> str:
    scope = event.scope
    if event.action == "nothing" or scope is None:
        return "nothing to do"
    pr = f" (#{event.pr})" if event.pr is not None else ""
    if event.action == "cleanup":
        return f"cleanup of the preview of {scope.branch}{pr}"
    if scope.is_main:
        return f"production deploy of {scope.branch}"
    return f"preview of {scope.branch}{pr}"


# -- deploy ------------------------------------------------------------------------
def _deploy(config: Config, options: Options, event: Event, run: _Run) -> None:
    assert event.scope is not None and event.head is not None
    rollback = event.inputs.ref is not None
    if rollback:
        from flowship.deploy.vcs import check_rollback

        check_rollback(config.root, event.head, event.scope.branch, event.inputs.branch_head)
    with console.group("Plan"):
        base = None if (event.everything and not options.flows) else _base(config, event, options)
        run.plan = plan = _plan(config, event, base=base, flows=options.flows, force_rebuild=options.force_rebuild)
        print_plan(plan, title="flowship", images=options.target == "ecs")
    if event.fork:
        run.notes.append(
            "This pull request comes from a fork, so its run has no secrets: flowship planned it and "
            "built or deployed nothing. A maintainer can deploy it by running the workflow by hand."
        )
        return
    if options.dry_run:
        run.notes.append("Dry run: planned only; nothing was built or deployed.")
        return
    if not plan.workflows and not plan.delete:
        run.notes.append("No workflow is affected, so nothing was built or deployed.")
    images: dict[str, str] = {}
    image_failures: dict[str, str] = {}
    if options.target == "ecs" and plan.images and plan.workflows:
        with console.group("Images"):
            images, image_failures = _build(config, plan, options.force_rebuild, run)
    if plan.workflows or plan.delete:
        run.github = github_deployments.start_for(config, event.repository, event.scope, plan.head)
    with console.group(f"Deploy to {options.target}"):
        from flowship.deploy import deploy_plan
        from flowship.deploy.runs import deployment_url

        target = make_target(config, options.target)
        # A family that did not build fails its own flows (saying why), not the others.
        before = _smoke_snapshot(config, plan, event)
        result = deploy_plan(config, plan, target, images, force=rollback, image_failures=image_failures)
        for o in result.outcomes:
            url = deployment_url(config, o.deployment_id) if o.deployment_id and o.status != "deleted" else None
            run.deployments.append(DeploymentLine.of(o, url))
        run.failed |= not result.ok
        if rollback:
            run.notes.append(f"Rollback: deployed {plan.head[:12]} even where a newer commit was deployed.")
    if not plan.scope.is_main and result.outcomes:
        run.merge = _merge_preview(config, plan)
    if options.target == "ecs" and plan.workflows:
        from flowship.ecs.costs import estimate

        run.costs = _courtesy("cannot estimate what a run costs", lambda: estimate(config, plan))
    if before is not None:
        _smoke(config, plan, result, before, run)
    if plan.scope.is_main and result.outcomes and result.ok:  # after a failure (an outage) it only adds noise
        _drift(config, plan, target, run)
    if options.run and result.ok:
        with console.group("Runs"):
            live = {o.deployment: o.deployment_id for o in result.outcomes
                    if o.status in ("created", "updated", "unchanged") and o.deployment_id}
            _start_runs(config, run, live, wait=options.wait)


def _base(config: Config, event: Event, options: Options) -> str | None:
    """The last commit deployed to the scope (from Prefect), else the event's candidates."""
    from flowship.changes import resolve_base

    last = None
    # A fork's run has no Prefect credentials; its plan compares with the event's base.
    # A label just added asks for the whole preview again: from the merge base, not the record.
    record_read = not event.fork and not event.replan and bool(config.env.prefect_api_url or not options.dry_run)
    if record_read:
        from flowship.deploy import read_last_deployed

        assert event.scope is not None
        last = read_last_deployed(config, event.scope)
        console.info(f"last deployed to {event.scope.name}: {last[:12] if last else 'nothing yet'}")
    base, note = resolve_base(config, event, last, record_read=record_read)
    console.info(note)
    return base


def _plan(config: Config, event: Event, *, base: str | None, flows: tuple[str, ...], force_rebuild: bool) -> Plan:
    from flowship.changes import make_plan

    assert event.scope is not None and event.head is not None
    return make_plan(
        config, scope=event.scope, head=event.head, base=base,
        everything=base is None and not flows, only=flows, force_rebuild=force_rebuild,
    )


def _build(config: Config, plan: Plan, force: bool, run: _Run) -> tuple[dict[str, str], dict[str, str]]:
    from flowship.images import build_images

    result = build_images(config, plan, force=force)
    for image in plan.images:
        built = result.images.get(image.name)
        error = result.failed.get(image.name)
        run.images.append(ImageLine(image.name, result.refs.get(image.name),
                                    built.deps_built if built else image.rebuild, error))
        if error:
            console.error(f"image {image.name}: {error}", title="flowship build")
    if result.failed:
        run.failed = True
    return dict(result.refs), dict(result.failed)


def _start_runs(config: Config, run: _Run, live: dict[str, UUID], *, wait: bool) -> None:
    """Start one run of each live deployment; with `wait`, a run that did not complete fails the job."""
    from flowship.deploy.runs import run_url, start_runs

    for name, flow_run in start_runs(config, live, wait=wait, say=console.info).items():
        state = (flow_run.state.name or str(flow_run.state.type)) if flow_run.state else "unknown"
        run.runs.append(RunLine(name, state, run_url(config, flow_run.id)))
        if wait and not (flow_run.state and flow_run.state.is_completed()):
            why = flow_run.state.message if flow_run.state and flow_run.state.message else ""
            failure = f"the run {flow_run.name} of {name} ended {state}" + (f": {why}" if why else ".")
            console.error(failure)
            # The summary says why the step failed, not only the log.
            run.notes.append(failure[0].upper() + failure[1:])
            run.failed = True


def _courtesy(cannot: str, section: Callable[[], T]) -> T | None:
    """A section that only reads (drift, merge preview, costs): the deploy's own result is what counts."""
    try:
        return section()
    except Exception as exc:
        console.warning(f"{cannot} ({type(exc).__name__}: {str(exc)[:200]}).")
        return None


def _drift(config: Config, plan: Plan, target: Target, run: _Run) -> None:
    """Main's deployments someone changed by hand, as notes of the summary (docs/deploy.md, "Drift")."""
    from flowship.commands.drift import drift
    from flowship.deploy.drift import lines

    with console.group("Drift"):
        found = _courtesy("cannot tell what drifted from git", lambda: drift(config, plan.scope, target))
    labels = {"drifted": "Drifted from git (the next deploy of it puts git's back)", "kept": "Kept as a person set it",
              "unchecked": "Drift not checked"}
    for line in lines(found) if found is not None else ():
        console.info(line)
        kind, _, rest = line.partition(" ")
        if kind in labels:
            run.notes.append(f"{labels[kind]}: {rest.strip()}")


def _merge_preview(config: Config, plan: Plan) -> MergePreview | None:
    """What merging this preview will do to main (read-only), or None when Prefect cannot say."""
    from flowship.deploy.merge import merge_preview

    return _courtesy("cannot say what merging will do to production", lambda: merge_preview(config, plan))


def _smoke_snapshot(config: Config, plan: Plan, event: Event) -> Before | None:
    """The scope before the deploy, when smoke runs are asked for (deploy/verify.py): on main by
    the action's `verify`, on a preview by its pull request's label or the dispatch input."""
    from flowship.deploy.verify import smoked, snapshot

    asked = config.env.verify if plan.scope.is_main else event.smoke
    return snapshot(config, plan) if asked and smoked(plan) else None


def _smoke(config: Config, plan: Plan, result: DeployResult, before: Before, run: _Run) -> None:
    from flowship.deploy.verify import verify

    with console.group("Smoke runs"):
        checked = verify(config, plan, result, before, say=console.info)
    for smoke in checked.smokes:
        run.runs.append(RunLine(smoke.deployment, "Completed" if smoke.passed else smoke.state, smoke.url))
        if not smoke.passed:
            run.notes.append(smoke.line())
            console.error(smoke.line())
    run.failed |= not checked.ok


# -- cleanup -----------------------------------------------------------------------
def _cleanup(config: Config, options: Options, event: Event, run: _Run) -> None:
    assert event.scope is not None
    if event.fork:
        run.notes.append("This pull request came from a fork; it never had a preview, so there is nothing to remove.")
        return
    if options.dry_run:
        run.notes.append("Dry run: the preview was not removed.")
        return
    with console.group(f"Cleanup of {event.scope.branch}"):
        from flowship.deploy import cleanup_branch

        result = cleanup_branch(config, event.scope.branch, make_target(config, options.target))
        run.deployments += [DeploymentLine(name, "deleted") for name in result.deleted]
        run.deployments += [DeploymentLine(name, "failed", why) for name, why in result.failed.items()]
        run.failed |= not result.ok
        if result.ok:
            github_deployments.deactivate_for(config, event.repository, event.scope)
        if not result.deleted and not result.failed:
            run.notes.append("The preview had no deployments left to remove.")


# -- report ------------------------------------------------------------------------
def _report(config: Config, ctx: Context, event: Event, run: _Run) -> None:
    with console.group("Report"):
        report = Report(
            title=run.title, scope=event.scope, head=event.head, base=run.plan.base if run.plan else None,
            plan=run.plan, notes=tuple(run.notes), images=tuple(run.images), deployments=tuple(run.deployments),
            runs=tuple(run.runs), run_url=ctx.run_url,
            prefect_ui_url=config.env.prefect_ui_url, pr_title=event.pr_title, repository_url=ctx.repository_url,
            merge=run.merge, costs=run.costs,
        )
        if event.pr is not None and event.repository:
            report = replace(report, links=_comment(config, ctx, event, report))
        write_summary(ctx.summary, summary_markdown(report))
        write_outputs(ctx.output, outputs(report))
        if run.github is not None:
            run.github.finish_for(report)
        if not ctx.summary:
            console.info(summary_markdown(report))


def _comment(config: Config, ctx: Context, event: Event, report: Report) -> dict[str, str]:
    token = config.env.github_token
    if not token:
        console.warning("no GITHUB_TOKEN, so the pull request gets no comment (the action passes github.token).")
        return {}
    assert event.pr is not None and event.repository is not None
    try:
        result = upsert_comment(api_url=ctx.api_url, token=token, repository=event.repository, number=event.pr,
                                body=comment_markdown(report))
    except FlowshipError as exc:
        # The summary still says everything; a missing comment must not fail a deploy.
        console.warning(str(exc))
        return {}
    console.info(f"{result.action} the comment on #{event.pr}: {result.url}")
    return {"comment": result.url}


def run(config: Config, args: argparse.Namespace) -> int:
    overrides = {}
    if getattr(args, "target", None):
        overrides["target"] = args.target
    options = Options.from_config(config, **overrides)
    if getattr(args, "dry_run", False):
        options = replace(options, dry_run=True)
    return run_ci(config, options)

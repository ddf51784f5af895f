"""`flowship drift [--scope main|BRANCH]`: deployments someone changed since flowship deployed them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from functools import cache

from flowship import console
from flowship.changes import make_plan
from flowship.commands.targets import make_target
from flowship.config import Config
from flowship.deploy.drift import Declared, DriftReport, find_drift, lines
from flowship.deploy.runs import scope_for
from flowship.deploy.target import Target
from flowship.errors import EXIT_OK
from flowship.plan import PlannedWorkflow
from flowship.scope import Scope


def declared_at(config: Config, scope: Scope) -> Declared:
    """What each commit declares, planned once per commit (deployments of a scope share few commits)."""

    @cache
    def declared(sha: str) -> Mapping[str, PlannedWorkflow]:
        return {w.name: w for w in make_plan(config, scope=scope, head=sha, everything=True).workflows}

    return declared


def drift(config: Config, scope: Scope, target: Target) -> DriftReport:
    """The drift of `scope` (what `flowship ci` adds to main's deploy summary too)."""
    return find_drift(config, scope, target, declared_at(config, scope))


def run(config: Config, args: argparse.Namespace) -> int:
    scope = scope_for(config, args.scope)
    target = make_target(config, args.target)
    with console.group(f"Drift of {scope.name} ({target.name})"):
        report = drift(config, scope, target)
    if args.json:
        print(console.redact(json.dumps(to_json(report), indent=2, allow_nan=False, default=str)))
    for line in lines(report):
        console.info(line)
    verdict = (f"{len(report.drifted)} of {report.checked} deployment(s) of {scope.name} drifted from git; "
               "the next deploy of each puts git's values back.") if report.drifted else (
        f"all {report.checked} deployment(s) of {scope.name} match what their commits declare.")
    console.info(verdict)
    return EXIT_OK


def to_json(report: DriftReport) -> dict[str, object]:
    return {
        "scope": report.scope.name, "checked": report.checked,
        "drifted": [{"deployment": d.deployment, "commit": d.commit,
                     "changes": [{"field": c.field, "prefect": c.old, "git": c.new} for c in d.changes]}
                    for d in report.drifted],
        "kept": report.kept, "unchecked": report.unchecked, "notes": report.notes,
    }

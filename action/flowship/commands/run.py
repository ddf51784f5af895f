"""`flowship run FLOW [--scope main|BRANCH] [--param k=v] [--wait]`: start a run by hand."""

from __future__ import annotations

import argparse

from flowship import console
from flowship.config import Config
from flowship.deploy.runs import Finished, parse_params, run_deployment
from flowship.errors import EXIT_FAILURE, EXIT_OK


def run(config: Config, args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    outcome = run_deployment(config, args.flow, args.scope, params, wait=args.wait, say=console.info)
    if not isinstance(outcome, Finished):
        return EXIT_OK
    state = outcome.run.state
    if outcome.has_result:
        console.info(f"result: {outcome.result!r}")
    if state.is_completed():
        console.info(f"{outcome.run.name} completed.")
        return EXIT_OK
    console.error(f"{outcome.run.name} ended {state.name}" + (f": {state.message}" if state.message else "."))
    return EXIT_FAILURE

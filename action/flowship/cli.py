"""The command line: parse, build the configuration once, dispatch, translate errors.

Each subcommand is one function in `flowship.commands.<name>`, imported only
when it runs, so `flowship plan` never pays for Prefect, boto3 or docker.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowship import __version__, console, redact
from flowship.config import load_config
from flowship.errors import EXIT_FAILURE, FlowshipError


def _plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", metavar="REV", help="compare from this commit (default: the last deployed; for a branch, else its merge base with the default branch; else everything)")
    parser.add_argument("--head", metavar="REV", default="HEAD", help="compare to this commit (default: HEAD)")
    parser.add_argument("--branch", metavar="NAME", help="the branch being deployed (default: the current branch)")
    parser.add_argument("--pr", metavar="N", type=int, help="the pull request number of a preview")
    parser.add_argument("--all", dest="everything", action="store_true", help="plan every workflow")
    parser.add_argument("--flow", dest="only", metavar="NAME", action="append", default=[], help="plan this workflow (repeatable)")
    parser.add_argument("--force-rebuild", action="store_true", help="rebuild images even when their inputs did not change")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowship", description="Deploy Prefect flows to AWS ECS from GitHub Actions.")
    parser.add_argument("--version", action="version", version=f"flowship {__version__}")
    parser.add_argument("--root", metavar="DIR", default=".", help="the repository (default: .)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("discover", help="list the workflows under the flows directory")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    p = sub.add_parser("plan", help="work out what a commit range deploys, deletes and builds")
    _plan_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")

    p = sub.add_parser("build", help="build and push the images a plan needs")
    p.add_argument("--plan", metavar="FILE", help="a plan written by `plan --json`")
    _plan_options(p)
    p.add_argument("--output", metavar="FILE", help="write the image references (by digest) here")

    p = sub.add_parser("deploy", help="create or update the planned deployments")
    p.add_argument("--plan", metavar="FILE", help="a plan written by `plan --json`")
    _plan_options(p)
    p.add_argument("--target", choices=["local", "ecs"], default="local")
    p.add_argument("--images", metavar="FILE", help="image references written by `build --output`")
    p.add_argument("--force", action="store_true", help="deploy even where a newer (or unknown) commit runs: a rollback")

    p = sub.add_parser("cleanup", help="delete a branch's preview deployments")
    p.add_argument("--branch", metavar="NAME", required=True)
    p.add_argument("--target", choices=["local", "ecs"], default="local")

    p = sub.add_parser("run", help="start a flow run of a deployment")
    p.add_argument("flow", metavar="FLOW")
    p.add_argument("--scope", default="main", help="main or a branch name")
    p.add_argument("--param", metavar="K=V", action="append", default=[], help="a parameter (V is JSON, else a string)")
    p.add_argument("--wait", action="store_true", help="follow the run until it finishes")

    p = sub.add_parser("bootstrap", help="create the ECR repository, ECS cluster and work pools a team needs")
    p.add_argument("--target", choices=["local", "ecs"], default="ecs")

    p = sub.add_parser("ci", help="run the whole pipeline for the GitHub event in the environment")
    # The action sets these through FLOWSHIP_TARGET / FLOWSHIP_DRY_RUN; the flags override them.
    p.add_argument("--target", choices=["local", "ecs"], default=None, help="where deployments go (default: ecs)")
    p.add_argument("--dry-run", action="store_true", help="plan and report only")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    debug = args.debug or env.get("FLOWSHIP_DEBUG") == "1"
    try:
        config = load_config(Path(args.root).resolve(), env)
        # Every mask first, before any text someone else chose is printed.
        console.configure(actions=config.env.in_actions, secrets=[*config.env.secrets(), *redact.from_environment(env)])
        module = importlib.import_module(f"flowship.commands.{args.command}")
        return module.run(config, args)
    except FlowshipError as exc:
        console.error(str(exc) if not exc.file else exc.message, file=exc.file, line=exc.line)
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted.")
        return 130
    except Exception as exc:  # the boundary: anything unforeseen is a bug report
        if debug:
            raise
        console.error(f"an unexpected error: {type(exc).__name__}: {exc}. Run again with --debug for the traceback.")
        return EXIT_FAILURE


def entry() -> None:
    sys.exit(main())

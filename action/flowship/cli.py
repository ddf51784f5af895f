"""The command line: parse, build the configuration once, dispatch, translate errors.

Each subcommand is one function in `flowship.commands.<name>`, imported only
when it runs, so `flowship plan` never pays for Prefect, boto3 or docker.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flowship import __version__, console, redact
from flowship.commands.targets import TARGETS
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


_TARGET_HELP = "where deployments go: local (a process work pool) or ecs (default: %(default)s)"


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before or after the subcommand; after it, SUPPRESS keeps the top-level value when absent.
    default: object = "." if top else argparse.SUPPRESS
    parser.add_argument("--root", metavar="DIR", default=default, help="the repository (default: .)")
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show tracebacks")


def _command(sub: Any, name: str, summary: str, examples: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p, top=False)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowship", description="Deploy Prefect flows to AWS ECS from GitHub Actions.")
    parser.add_argument("--version", action="version", version=f"flowship {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "discover", "list the workflows under the flows directory",
                 "flowship discover\nflowship discover --json > workflows.json")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    p = _command(sub, "plan", "work out what a commit range deploys, deletes and builds",
                 "flowship plan\nflowship plan --base origin/main --json > plan.json\nflowship plan --all --branch main")
    _plan_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")

    p = _command(sub, "build", "build and push the images a plan needs",
                 "flowship build --plan plan.json --output images.json")
    p.add_argument("--plan", metavar="FILE", help="a plan written by `plan --json`")
    _plan_options(p)
    p.add_argument("--output", metavar="FILE", help="write the image references (by digest) here")

    p = _command(sub, "deploy", "create or update the planned deployments",
                 "flowship deploy\nflowship deploy --plan plan.json --target ecs --images images.json\n"
                 "flowship deploy --flow train --head v1.2 --force   # a rollback")
    p.add_argument("--plan", metavar="FILE", help="a plan written by `plan --json`")
    _plan_options(p)
    p.add_argument("--target", choices=TARGETS, default="local", help=_TARGET_HELP)
    p.add_argument("--images", metavar="FILE", help="image references written by `build --output`")
    p.add_argument("--force", action="store_true", help="deploy even where a newer (or unknown) commit runs: a rollback")
    p.add_argument("--verify", action="store_true",
                   help="smoke-run each changed workflow that declares smoke={...}; on main, roll back what "
                        "fails (default on main: FLOWSHIP_VERIFY; a preview only reports)")
    p.add_argument("--no-rollback", action="store_true", help="with --verify, keep a commit whose smoke run failed")

    p = _command(sub, "cleanup", "delete a branch's preview deployments",
                 "flowship cleanup --branch feature/x")
    p.add_argument("--branch", metavar="NAME", required=True, help="the branch whose previews go")
    p.add_argument("--target", choices=TARGETS, default="local", help=_TARGET_HELP)

    p = _command(sub, "drift", "list deployments whose fields someone changed since their commit was deployed",
                 "flowship drift\nflowship drift --scope feature/x --json")
    p.add_argument("--scope", default="main", help="main or a branch name (default: main)")
    p.add_argument("--target", choices=TARGETS, default="local", help=_TARGET_HELP)
    p.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")

    p = _command(sub, "prune", "remove orphaned deployments and closed or stale previews (never main's live flows)",
                 "flowship prune --dry-run\nflowship prune --target ecs")
    p.add_argument("--dry-run", action="store_true", help="list what would go; write nothing")
    p.add_argument("--target", choices=TARGETS, default="local", help=_TARGET_HELP)

    p = _command(sub, "run", "start a flow run of a deployment",
                 "flowship run train --param epochs=1 --wait\nflowship run train --scope feature/x")
    p.add_argument("flow", metavar="FLOW", help="the flow's name")
    p.add_argument("--scope", default="main", help="main or a branch name (default: main)")
    p.add_argument("--param", metavar="K=V", action="append", default=[], help="a parameter (V is JSON, else a string)")
    p.add_argument("--wait", action="store_true", help="follow the run until it finishes")

    p = _command(sub, "bootstrap", "create the AWS stack, ECS cluster and work pools a team needs",
                 "flowship bootstrap --yes --write          # the whole AWS stack (CloudFormation), in CI\n"
                 "flowship bootstrap --template > stack.yaml  # review it first\n"
                 "flowship bootstrap --no-stack             # infrastructure of your own: create the rest, check it\n"
                 "flowship bootstrap --target local")
    p.add_argument("--target", choices=TARGETS, default="ecs", help=_TARGET_HELP)
    p.add_argument("--stack", nargs="?", const="", default=None, metavar="NAME",
                   help="the CloudFormation stack to deploy (the default for --target ecs; name: the cluster's)")
    p.add_argument("--no-stack", action="store_true",
                   help="no stack: infrastructure of your own (create the ECR repository, log group, cluster and "
                        "pool; check the rest)")
    p.add_argument("--parameter", metavar="KEY=VALUE", action="append", default=[],
                   help="a stack parameter, e.g. GitHubRepository=octo/flows (repeatable)")
    p.add_argument("--yes", action="store_true", help="apply the change set without asking (CI)")
    p.add_argument("--write", action="store_true", help="write [tool.flowship.aws] from the stack's outputs into pyproject.toml")
    p.add_argument("--template", action="store_true", help="print the stack's rendered template and exit")

    p = _command(sub, "doctor", "check a deployed stack end to end, one line each",
                 "flowship doctor\nflowship doctor --stack flowship")
    p.add_argument("--stack", metavar="NAME", help="the stack (default: the cluster's name)")
    p.add_argument("--heartbeat", metavar="SECONDS", type=int, default=120,
                   help="a worker must have polled within this long (default: %(default)s)")

    p = _command(sub, "ci", "run the whole pipeline for the GitHub event in the environment",
                 "flowship ci                # in GitHub Actions (the composite action runs this)\n"
                 "flowship ci --dry-run      # plan and report only")
    # The action sets these through FLOWSHIP_TARGET / FLOWSHIP_DRY_RUN; the flags override them.
    p.add_argument("--target", choices=TARGETS, default=None,
                   help="where deployments go: local (a process work pool) or ecs (default: FLOWSHIP_TARGET, else ecs)")
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
        console.failure(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted.")
        return 130
    except Exception as exc:  # the boundary: anything unforeseen is a bug report
        if debug:
            raise
        if missing := _not_installed(exc):
            console.error(f"this flowship was installed for planning only, without {missing}; `flowship {args.command}` "
                          "needs the full install (pip install flowship).")
            return EXIT_FAILURE
        console.error(f"an unexpected error: {type(exc).__name__}: {exc}. Run again with --debug for the traceback.")
        return EXIT_FAILURE


# What the action's light install (pyproject's `plan` extra, for a fork's pull
# request) leaves out; a command that reaches for one of them says so.
_FULL_INSTALL_ONLY = frozenset({"prefect", "prefect_aws", "boto3", "botocore", "docker", "httpx"})


def _not_installed(exc: Exception) -> str | None:
    root = (exc.name or "").partition(".")[0] if isinstance(exc, ModuleNotFoundError) else ""
    return root if root in _FULL_INSTALL_ONLY else None


def entry() -> None:
    code = main()
    # Everything flowship writes is closed by now (outputs, summary, temporary
    # checkouts; no thread of its own outlives `main`): flush what is buffered
    # and leave without the interpreter's teardown of the Prefect, pydantic and
    # boto3 modules, ~0.2-0.4 s of every run (scripts/bench/bench_e2e.py, "exit").
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)

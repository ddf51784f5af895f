"""`flowship ci`: the whole pipeline for the GitHub event in the environment.

Its options come from the environment (the composite action passes its
inputs through `env:` as FLOWSHIP_* variables, read by `flowship.config`);
`--target` and `--dry-run` override them when run by hand.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from flowship.config import Config
from flowship.pipeline import Options, run_ci


def run(config: Config, args: argparse.Namespace) -> int:
    overrides = {}
    if getattr(args, "target", None):
        overrides["target"] = args.target
    options = Options.from_config(config, **overrides)
    if getattr(args, "dry_run", False):
        options = replace(options, dry_run=True)
    return run_ci(config, options)

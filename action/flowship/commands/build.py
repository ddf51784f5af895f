"""`flowship build`: build and push the images a plan needs, and say where they are.

`--output FILE` gets `{"images": {family: ref-by-digest}, "failed": {family: reason}}`,
which `deploy --images FILE` reads: a family that failed fails only the
flows that need it, and this command exits 1 naming them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flowship import console
from flowship.config import Config
from flowship.errors import EXIT_FAILURE, EXIT_OK, InputError
from flowship.plan import Plan


def run(config: Config, args: argparse.Namespace) -> int:
    if args.plan:
        plan = Plan.load(args.plan)
    else:
        from flowship.commands.plan import plan_from_args

        plan = plan_from_args(config, args)
    from flowship.images import build_images

    result = build_images(config, plan, force=bool(getattr(args, "force_rebuild", False)))
    if args.output:
        try:
            Path(args.output).write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror}.") from None
    if not plan.images:
        console.info("no image to build: the plan needs none.")
    for family, ref in result.refs.items():
        image = result.images[family]
        what = "built" if image.code_built else "already in the registry"
        deps = "deps rebuilt" if image.deps_built else "deps reused"
        console.info(f"{family}: {ref} ({what}; {deps})")
    if result.failed:
        for family, reason in result.failed.items():
            flows = sorted(w.name for w in plan.workflows if w.image == family)
            needed = f"; not deployable: {', '.join(flows)}" if flows else ""
            console.error(f"image {family} failed{needed}. {reason}")
        console.info(f"{len(result.failed)} of {len(result.failed) + len(result.refs)} image families failed.")
        return EXIT_FAILURE
    return EXIT_OK

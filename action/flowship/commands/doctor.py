"""`flowship doctor`: check a deployed stack end to end; exit 1 when something is wrong."""

from __future__ import annotations

import argparse

from flowship import console
from flowship.config import Config


def run(config: Config, args: argparse.Namespace) -> int:
    from flowship.ecs.doctor import diagnose

    name = args.stack or config.aws.cluster
    with console.group(f"doctor (stack {name})"):
        checks = diagnose(config, name, heartbeat_s=args.heartbeat)
    for check in checks:
        line = f"{'ok' if check.ok else 'FAIL':<4}  {check.what}: {check.detail}"
        (console.info if check.ok else console.error)(line)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.error(f"{len(failed)} of {len(checks)} checks failed; each line above says what to fix.")
        return 1
    console.info(f"all {len(checks)} checks passed: a Run in the Prefect UI can start on this stack.")
    return 0

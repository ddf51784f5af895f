"""`flowship discover [--json]`: the workflows under the flows directory, read statically."""

from __future__ import annotations

import argparse
import json

from flowship import console
from flowship.config import Config
from flowship.discovery import Discovery, discover
from flowship.errors import EXIT_OK, EXIT_USAGE


def run(config: Config, args: argparse.Namespace) -> int:
    found = discover(config)
    if getattr(args, "json", False):
        print(json.dumps(found.to_json(), indent=2))
    print_table(found)
    for problem in found.problems:
        console.error(problem.message, file=problem.file, line=problem.line)
    return EXIT_USAGE if found.problems else EXIT_OK


def print_table(found: Discovery) -> None:
    if not found.records:
        console.info("no workflows found.")
        return
    rows = [("WORKFLOW", "ENTRYPOINT", "MACHINE")]
    for r in found.records:
        m = r.workflow.machine
        kind = f"gpu x{m.gpu_count}" if m.is_gpu else "cpu"
        rows.append((r.name, r.entrypoint, f"{kind} {m.cpu_value}/{m.memory_value} {m.family}"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        console.info(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    console.info(f"{len(found.records)} workflow(s), {len(found.problems)} problem(s).")

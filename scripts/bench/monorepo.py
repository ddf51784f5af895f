"""Generate a synthetic ML monorepo for flowship's planning benchmark.

Layout (sizes are parameters; the defaults are 2,000 flows and 20,000
library modules):

    pyproject.toml                  [tool.flowship] with flows = "flows" and a data mapping
    lib/l<L>/p<P>/m<M>.py           a layered shared library: a module of layer L imports a
                                    few modules of lower layers (absolute `import a.b`,
                                    `from a.b import c`, `from a.b.c import name`), sometimes
                                    a sibling (`from . import m`) or a cousin
                                    (`from ..p<Q> import m`), sometimes inside a function
    flows/team_<T>/flow_<N>.py      flows: a Workflow(...) declaration, an @flow, and imports
                                    of a few modules of the top layers
    data/, docs/                    files that map to some flows / to nothing

and a history of a few commits: the initial tree, then one commit that
changes one flow file, one that changes one mid-layer library module, and
one that only changes docs. `generate()` returns the shas by name.

Run it alone: `python scripts/bench/monorepo.py DIR [--flows N] [--modules N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@flowship.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@flowship.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class Shape:
    flows: int = 2000
    modules: int = 20000
    layers: int = 5
    packages_per_layer: int = 40
    teams: int = 40
    seed: int = 7

    @property
    def per_package(self) -> int:
        return max(1, self.modules // (self.layers * self.packages_per_layer))


def git(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | GIT_ENV
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _module(layer: int, package: int, index: int) -> str:
    return f"lib.l{layer}.p{package}.m{index}"


def library_module(shape: Shape, rng: random.Random, layer: int, package: int, index: int) -> str:
    lines = [f'"""Shared library module {_module(layer, package, index)}."""', "", "from __future__ import annotations", "",
             "import json", "import logging", "from dataclasses import dataclass", ""]
    uses = []
    if layer > 0:
        for k in range(rng.randint(2, 3)):
            lo = rng.randrange(layer)
            target = _module(lo, rng.randrange(shape.packages_per_layer), rng.randrange(shape.per_package))
            pkg, _, mod = target.rpartition(".")
            form = k % 3
            if form == 0:
                lines.append(f"import {target} as dep{k}")
            elif form == 1:
                lines.append(f"from {pkg} import {mod} as dep{k}")
            else:
                lines.append(f"from {target} import transform as dep{k}_transform")
                lines.append(f"dep{k} = None")
            uses.append(f"dep{k}")
    if index > 0 and rng.random() < 0.3:
        lines.append(f"from . import m{rng.randrange(index)} as sibling")
    if package > 0 and rng.random() < 0.1:
        lines.append(f"from ..p{rng.randrange(package)} import m{rng.randrange(shape.per_package)} as cousin")
    lines += ["", "log = logging.getLogger(__name__)", "CONSTANT = %d" % rng.randrange(1000), "", "",
              "@dataclass", "class Record:", "    key: str", "    value: float = 0.0", "",
              "    def scaled(self, factor: float) -> float:", "        return self.value * factor + CONSTANT", "", "",
              "def transform(rows: list[dict]) -> list[Record]:",
              "    out = [Record(key=str(r['k']), value=float(r.get('v', 0))) for r in rows]",
              "    log.debug('transformed %d rows', len(out))", "    return [r for r in out if r.value >= 0]", "", "",
              "def summary(records: list[Record]) -> str:"]
    if layer > 0 and rng.random() < 0.2:  # a lazy import inside a function
        lazy = _module(rng.randrange(layer), rng.randrange(shape.packages_per_layer), rng.randrange(shape.per_package))
        lines.append(f"    import {lazy}  # imported lazily: heavy")
    lines += ["    return json.dumps({'n': len(records), 'total': sum(r.value for r in records)})", ""]
    return "\n".join(lines)


def flow_module(shape: Shape, rng: random.Random, number: int) -> str:
    top = shape.layers - 1
    imports = []
    for k in range(rng.randint(3, 5)):
        layer = rng.choice([top, top, top - 1]) if top > 0 else 0
        target = _module(layer, rng.randrange(shape.packages_per_layer), rng.randrange(shape.per_package))
        pkg, _, mod = target.rpartition(".")
        imports.append(f"from {pkg} import {mod} as lib{k}" if k % 2 else f"import {target} as lib{k}")
    gpu = number % 5 == 0
    machine = ("AwsEcsMachine(is_gpu=True, storage=50, cpu_value=2048, memory_value=4096, image=AwsEcsImage.ml)"
               if gpu else "AwsEcsMachine(cpu_value=1024, memory_value=2048, image=AwsEcsImage.base)")
    return "\n".join([
        f'"""Flow {number}: trains or transforms something for team {number % shape.teams}."""', "",
        "from prefect import flow", "", "from flowship import AwsEcsImage, AwsEcsMachine, Workflow", *imports, "",
        "workflow = Workflow(", f"    machine={machine},", f'    tags=["team-{number % shape.teams}"],',
        '    schedules=["0 3 * * *"],' if number % 7 == 0 else "", ")", "", "",
        f'@flow(name="flow-{number:05d}")', f"def flow_{number:05d}(rows: int = 10) -> int:",
        "    data = [{'k': i, 'v': i} for i in range(rows)]",
        "    return len(lib0.transform(data))", "",
    ])


def write_tree(root: Path, shape: Shape) -> None:
    rng = random.Random(shape.seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("__pycache__/\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "monorepo"\nversion = "0"\n\n[tool.flowship]\nflows = "flows"\n\n'
        '[tool.flowship.data]\n"data/team0/**" = ["flow-00000", "flow-00040"]\n'
    )
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / "__init__.py").write_text("")
    for layer in range(shape.layers):
        (root / "lib" / f"l{layer}").mkdir(exist_ok=True)
        (root / "lib" / f"l{layer}" / "__init__.py").write_text("")
        for package in range(shape.packages_per_layer):
            pdir = root / "lib" / f"l{layer}" / f"p{package}"
            pdir.mkdir(exist_ok=True)
            (pdir / "__init__.py").write_text(f'"""Package {layer}.{package}."""\n')
            for index in range(shape.per_package):
                (pdir / f"m{index}.py").write_text(library_module(shape, rng, layer, package, index))
    for number in range(shape.flows):
        team = root / "flows" / f"team_{number % shape.teams:02d}"
        team.mkdir(parents=True, exist_ok=True)
        (team / f"flow_{number:05d}.py").write_text(flow_module(shape, rng, number))
    (root / "data" / "team0").mkdir(parents=True, exist_ok=True)
    (root / "data" / "team0" / "labels.csv").write_text("k,v\n1,2\n")
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "index.md").write_text("# The monorepo\n")


def generate(root: Path, shape: Shape) -> dict[str, str]:
    """Write the repository and its history; returns commit shas by name."""
    write_tree(root, shape)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the monorepo")
    shas = {"initial": git(root, "rev-parse", "HEAD")}
    flow = root / "flows" / "team_01" / "flow_00001.py"
    flow.write_text(flow.read_text().replace("rows: int = 10", "rows: int = 20"))
    git(root, "commit", "-q", "-am", "flow-00001: more rows")
    shas["one_flow"] = git(root, "rev-parse", "HEAD")
    mid = root / "lib" / f"l{shape.layers // 2}" / "p3" / "m5.py"
    mid.write_text(mid.read_text().replace("CONSTANT = ", "CONSTANT = 1 + "))
    git(root, "commit", "-q", "-am", "a mid-layer library change")
    shas["one_lib"] = git(root, "rev-parse", "HEAD")
    (root / "docs" / "index.md").write_text("# The monorepo\n\nMore words.\n")
    git(root, "commit", "-q", "-am", "docs")
    shas["docs"] = git(root, "rev-parse", "HEAD")
    return shas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--flows", type=int, default=Shape.flows)
    parser.add_argument("--modules", type=int, default=Shape.modules)
    args = parser.parse_args()
    shas = generate(args.dir, Shape(flows=args.flows, modules=args.modules))
    for name, sha in shas.items():
        print(f"{name}: {sha}")


if __name__ == "__main__":
    main()

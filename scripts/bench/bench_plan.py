"""Benchmark `flowship plan` on a synthetic monorepo against the import-everything baseline.

In one run: generate (or reuse) the monorepo of scripts/bench/monorepo.py,
then time, each as a fresh subprocess (interpreter start-up included):

- `flowship plan --json` for a one-flow-file commit and for a one-library-
  module commit, with a cold parse cache (an empty FLOWSHIP_CACHE_DIR, as on
  a fresh CI runner without actions/cache) and a warm one;
- the baseline Prefect's tooling implies: importing every flow module with
  importlib to find its flows (what `prefect deploy` does for each
  entrypoint). A stub `prefect` (an identity `flow` decorator) stands in for
  the real one, so the baseline does not even pay for importing Prefect,
  and it runs twice: without and with Python's bytecode cache, the faster
  run being the baseline the ratios use. It imports all of them, not a
  sample.

Usage: python scripts/bench/bench_plan.py [--small] [--flows N --modules N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monorepo import Shape, generate  # noqa: E402

STUB_PREFECT = '''
def flow(fn=None, **kwargs):
    def mark(f):
        f.__prefect_flow__ = kwargs.get("name") or f.__name__.replace("_", "-")
        return f
    return mark(fn) if fn is not None else mark
'''

BASELINE = '''
import importlib.util, pathlib, sys
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
found = 0
for i, path in enumerate(sorted((root / "flows").rglob("*.py"))):
    spec = importlib.util.spec_from_file_location(f"flow_module_{i}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found += sum(1 for v in vars(module).values() if hasattr(v, "__prefect_flow__"))
print(found, len(sys.modules))
'''


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 2):
        sys.exit(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="200 flows, 2,000 modules: a quick check")
    parser.add_argument("--flows", type=int)
    parser.add_argument("--modules", type=int)
    parser.add_argument("--dir", type=Path, help="where generated monorepos are kept (default: the temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="cold and warm runs to take the median of")
    args = parser.parse_args()
    shape = Shape(flows=200, modules=2000) if args.small else Shape()
    shape = Shape(flows=args.flows or shape.flows, modules=args.modules or shape.modules)

    home = args.dir or Path(tempfile.gettempdir()) / "flowship-bench"
    repo = home / f"monorepo-{shape.flows}-{shape.modules}-{shape.seed}-v1"
    shas_file = repo.with_suffix(".json")
    if not shas_file.exists():
        shutil.rmtree(repo, ignore_errors=True)
        print(f"generating {shape.flows} flows and {shape.modules} library modules in {repo} ...", file=sys.stderr)
        start = time.perf_counter()
        shas_file.write_text(json.dumps(generate(repo, shape)))
        print(f"  generated in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    shas = json.loads(shas_file.read_text())
    py_files = sum(1 for _ in repo.rglob("*.py"))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PREFECT_API", "FLOWSHIP_"))}
    cache = Path(tempfile.mkdtemp(prefix="flowship-bench-cache-"))
    env["FLOWSHIP_CACHE_DIR"] = str(cache)

    def plan(base: str, head: str) -> tuple[float, dict]:
        took, out = timed([sys.executable, "-m", "flowship", "--root", str(repo), "plan", "--base", base,
                           "--head", head, "--branch", "main", "--json"], env)
        return took, json.loads(out)

    load_before = os.getloadavg()
    rows: list[tuple[str, float, str]] = []
    for label, base, head in (("one flow file", "initial", "one_flow"), ("one library module", "one_flow", "one_lib")):
        colds = []
        for _ in range(args.repeat):  # cold: an empty cache each time, as on a fresh CI runner
            shutil.rmtree(cache, ignore_errors=True)
            took, result = plan(shas[base], shas[head])
            colds.append(took)
        warm_runs = [plan(shas[base], shas[head])[0] for _ in range(args.repeat)]
        what = f"{len(result['workflows'])} workflow(s) planned"
        rows.append((f"plan, {label}, cold cache (median of {args.repeat})", statistics.median(colds), what))
        rows.append((f"plan, {label}, warm cache (median of {args.repeat})", statistics.median(warm_runs), what))
    docs, result = plan(shas["one_lib"], shas["docs"])
    rows.append(("plan, docs-only commit, warm cache", docs, f"{len(result['workflows'])} workflow(s) planned"))

    stub = Path(tempfile.mkdtemp(prefix="flowship-bench-stub-"))
    (stub / "prefect").mkdir()
    (stub / "prefect" / "__init__.py").write_text(STUB_PREFECT)
    script = stub / "baseline.py"
    script.write_text(BASELINE)
    base_env = env | {"PYTHONPATH": str(stub)}
    for pycache in repo.rglob("__pycache__"):
        shutil.rmtree(pycache)
    first, out = timed([sys.executable, str(script), str(repo)], base_env)
    second, out = timed([sys.executable, str(script), str(repo)], base_env)
    flows_found, modules_loaded = out.split()
    baseline = min(first, second)
    rows.append(("baseline: import every flow module, no bytecode cache", first, f"{flows_found} flows, {modules_loaded} modules"))
    rows.append(("baseline: import every flow module, bytecode cached", second, f"{flows_found} flows, {modules_loaded} modules"))
    for pycache in repo.rglob("__pycache__"):
        shutil.rmtree(pycache)
    shutil.rmtree(stub, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)

    load_after = os.getloadavg()
    print(f"\nflowship plan on a monorepo of {shape.flows} flows, {py_files} Python files "
          f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after)\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'wall s':>7}  {'vs baseline':>11}  result")
    for name, took, what in rows:
        ratio = "" if name.startswith("baseline") else f"{baseline / took:10.1f}x"
        print(f"{name:<{width}}  {took:7.2f}  {ratio:>11}  {what}")
    print(f"\nbaseline = the faster baseline run ({baseline:.2f}s); ratio = baseline / flowship plan.")


if __name__ == "__main__":
    main()

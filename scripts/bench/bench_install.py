"""Benchmark the action's own install, the way its `Install flowship` step does it, against `pip install`.

Every job pays for installing flowship before it plans anything. In one run,
each into a new virtualenv, with the machine's load printed beside each:

- the baseline: `pip install <flowship>` with an empty pip cache (what the
  action did before: `--no-cache-dir`, so nothing from an earlier run helps);
- `uv pip install <flowship>` with an empty uv cache (the action on a cache
  miss: a fresh runner, or a new flowship);
- the light install of a fork's pull request: flowship without dependencies
  plus pyproject's `plan` extra, empty uv cache;
- a cache hit: the action installs nothing, and what the job pays is
  actions/cache restoring the environment, measured here as extracting a
  zstd tarball of it (the format actions/cache writes) from local disk.

Figures come from this machine's network to PyPI and its disk; a hosted
runner differs, the ratios less so. Installing uv itself (pip, from PyPI)
is timed too, as the action pays it on every miss.

Usage: python scripts/bench/bench_install.py [--skip-pip] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UV_VERSION = "0.13.9"  # the action's pin (action.yml)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(label: str, argv: list[str], env: dict[str, str] | None = None, *, shell: bool = False) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, shell=shell)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    print(f"  {label:<52} {took:7.1f} s   (load {load()})", flush=True)
    return took


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-pip", action="store_true", help="leave out the pip baseline (slow: minutes)")
    parser.add_argument("--dir", type=Path, help="work here (kept) instead of a temporary folder")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="flowship-bench-install-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # The source as the action sees it: the package and its pyproject, no build leftovers.
    source = work / "action"
    shutil.copytree(ROOT / "action", source / "action",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    plan_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["plan"]
    print(f"installing {source} (load {load()})", flush=True)

    tool = venv(work / "uv-tool")
    uv_install = timed(f"pip install uv=={UV_VERSION}", [str(tool), "-m", "pip", "install", "-q",
                                                         f"uv=={UV_VERSION}"])
    uv = str(tool.parent / "uv")

    def uv_env(name: str) -> dict[str, str]:
        return os.environ | {"UV_CACHE_DIR": str(work / f"uv-cache-{name}")}

    full = venv(work / "full")
    uv_full = timed("uv pip install flowship (empty uv cache)",
                    [uv, "pip", "install", "-q", "--python", str(full), str(source)], uv_env("full"))
    light = venv(work / "light")
    uv_light = timed("light: flowship --no-deps + the plan extra (empty cache)",
                     [uv, "pip", "install", "-q", "--python", str(light), "--no-deps", str(source)], uv_env("light"))
    uv_light += timed("  (the plan extra)", [uv, "pip", "install", "-q", "--python", str(light), *plan_extra],
                      uv_env("light"))
    archive = work / "full.tar.zst"
    subprocess.run(f"tar -C {work} -cf - full | zstd -q -T0 -o {archive}", shell=True, check=True)
    shutil.rmtree(work / "full")
    restore = timed(f"cache hit: restore the environment ({archive.stat().st_size / 2**20:.0f} MiB zstd)",
                    f"zstd -q -d -c {archive} | tar -C {work} -xf -", shell=True)
    check = timed("  the restored environment imports flowship", [str(full), "-c", "import flowship.cli"])

    pip_full = None
    if not args.skip_pip:
        pip_venv = venv(work / "pip")
        pip_full = timed("baseline: pip install flowship (--no-cache-dir)",
                         [str(pip_venv), "-m", "pip", "install", "-q", "--no-cache-dir", str(source)])
    miss = uv_install + uv_full
    print("per job (the action's step):")
    print(f"  cache miss (uv + flowship)   {miss:7.1f} s")
    print(f"  fork pull request (light)    {uv_install + uv_light:7.1f} s")
    print(f"  cache hit (restore only)     {restore + check:7.1f} s   (goal: <= 10 s)")
    if pip_full is not None:
        print("ratios (pip install, cold, / the action):")
        print(f"  cache miss  {pip_full / miss:6.1f}x")
        print(f"  light       {pip_full / (uv_install + uv_light):6.1f}x")
        print(f"  cache hit   {pip_full / (restore + check):6.1f}x")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Code-only commit vs a full deps rebuild: wall time and bytes pushed, in one run.

A repository with one flow on a family whose deps image carries a heavy
layer (HEAVY_MB of random bytes, so compression cannot shrink it) is built
once to warm up. Then, measured:

- code-only: a commit that changes the flow file (the median of 3 commits);
- full rebuild: a commit that changes the requirements file, so the deps
  image (and its heavy layer) is rebuilt and pushed, then the code image.

Bytes pushed are counted on the registry side: the sizes of the blobs that
appear in its storage during the build (layers, configs, manifests as
uploaded, compressed). Needs a Docker daemon and Debian's docker-registry
(scripts/setup.sh); nothing is pulled from outside.

    .venv/bin/python scripts/bench/bench_images.py [--heavy-mb 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the same Docker/registry helpers the tests use

from testing.docker import docker_client, python_base_image, start_registry  # noqa: E402
from testing.git import GIT_ENV, Repo, cpu_flow  # noqa: E402

TEMPLATE = """FROM {{ base_image }}
COPY deps/ {{ deps_dir }}/
RUN python -m pip install --no-cache-dir -r {{ deps_dir }}/requirements.txt \\
 && python -c "import os; open('/opt/heavy.bin', 'wb').write(os.urandom({{ heavy_mb }} * 1024 * 1024))"
"""


def build(project: Path, base: str | None) -> tuple[float, list[str]]:
    from flowship.changes import make_plan
    from flowship.config import load_config
    from flowship.images import build_images
    from flowship.scope import Scope

    config = load_config(project, os.environ)
    plan = make_plan(config, scope=Scope.main(), base=base, everything=base is None)
    log = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(log):  # the build log, kept out of the figures
        result = build_images(config, plan)
    took = time.perf_counter() - start
    if not result.ok:
        sys.exit(f"build failed: {result.failed}\n{log.getvalue()[-3000:]}")
    return took, result.built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heavy-mb", type=int, default=200)
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    client = docker_client()
    if client is None:
        sys.exit("no Docker daemon: run scripts/setup.sh first")
    image = python_base_image(client)
    with tempfile.TemporaryDirectory(prefix="flowship-bench-") as tmp:
        registry = start_registry(Path(tmp) / "registry")
        try:
            repo = Repo(Path(tmp) / "repo")

            def measured(files: dict[str, str], base: str) -> tuple[float, int, list[str], str]:
                head = repo.commit(files)
                before = registry.blobs()
                took, built = build(repo.path, base)
                pushed = sum(n for d, n in registry.blobs().items() if d not in before)
                return took, pushed, built, head

            seed = repo.commit({
                "pyproject.toml": (
                    f'[tool.flowship]\nregistry = "{registry.host}/bench"\n'
                    '[tool.flowship.images.heavy]\ntemplate = "docker/heavy.Dockerfile.j2"\n'
                    'requirements = ["requirements.txt"]\n'
                    f'args = {{ base_image = "{image}", heavy_mb = "{args.heavy_mb}" }}\n'
                ),
                "docker/heavy.Dockerfile.j2": TEMPLATE,
                "requirements.txt": "packaging\n",
                "flows/etl.py": cpu_flow("etl").replace("AwsEcsImage.base", '"heavy"'),
            })
            print(f"warm-up: first build of {args.heavy_mb} MB deps image ...", file=sys.stderr)
            build(repo.path, None)

            code_runs = []
            base = seed
            for i in range(3):
                took, pushed, built, base = measured(
                    {"flows/etl.py": cpu_flow("etl").replace("AwsEcsImage.base", '"heavy"') + f"\n# edit {i}\n"}, base
                )
                assert len(built) == 1, built  # the code image only
                code_runs.append((took, pushed))
            full_took, full_pushed, built, _ = measured({"requirements.txt": "packaging\n# bumped\n"}, base)
            assert len(built) == 2, built  # deps and code
        finally:
            registry.server.stop()

    code_took = statistics.median(t for t, _ in code_runs)
    code_pushed = statistics.median(p for _, p in code_runs)
    print(f"{'':24}{'wall s':>10}{'pushed bytes':>16}")
    print(f"{'code-only (median of 3)':24}{code_took:>10.2f}{code_pushed:>16,}")
    print(f"{'full deps rebuild':24}{full_took:>10.2f}{full_pushed:>16,}")
    speed = full_took / code_took
    share = code_pushed / full_pushed
    print(f"code-only is {speed:.1f}x faster and pushes {share:.4%} of the bytes "
          f"(target: >=10x, <5%): {'PASS' if speed >= 10 and share < 0.05 else 'FAIL'}")
    return 0 if speed >= 10 and share < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())

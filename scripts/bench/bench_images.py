#!/usr/bin/env python
"""Image builds where users wait, in one run: figures side by side, as ratios.

1. Warm machine: a code-only commit vs a full deps rebuild (HEAVY_MB of random
   bytes in the deps image), wall time and bytes pushed.
2. Fresh runner (`--fresh-gb`, default 1 and 3): a deps image with a layer of
   that many GB of random bytes is built and pushed, then removed from the
   local daemon, as on a new CI runner. A code-only commit is then made twice:
   through the registry API (flowship's default) and `docker build` FROM the
   deps image (`code_via="docker"`), which must pull it first. Wall time,
   bytes pulled (the registry's access log: the bytes of every GET answer) and
   bytes pushed (new blobs in its storage: layers, configs, manifests).

The Python base image the deps image is built on stays in the daemon (the
tests share it), so the docker path pulls only the deps image's own layers:
its figures here are better than on a really empty runner. Load averages are
printed with each figure. Needs a Docker daemon and Debian's docker-registry
(scripts/setup.sh), and about 3.5x the largest layer in free disk.

    .venv/bin/python scripts/bench/bench_images.py [--heavy-mb 200] [--fresh-gb 1 3] [--no-warm]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the same Docker/registry helpers the tests use

from testing.docker import LocalRegistry, docker_client, python_base_image, start_registry  # noqa: E402
from testing.git import GIT_ENV, Repo, cpu_flow  # noqa: E402

# Random bytes in 16 MiB writes (compression cannot shrink them, and the build never holds them all).
TEMPLATE = """FROM {{ base_image }}
COPY deps/ {{ deps_dir }}/
RUN python -m pip install --no-cache-dir -r {{ deps_dir }}/requirements.txt \\
 && python -c "import os; f = open('/opt/heavy.bin', 'wb'); [f.write(os.urandom(1 << 24)) for _ in range({{ heavy_mb }} // 16)]"
"""
FLOW = cpu_flow("etl").replace("AwsEcsImage.base", '"heavy"')
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<size>\d+|-)')


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Measured:
    wall: float
    pulled: int  # bytes of every GET answer the registry sent
    pushed: int  # bytes of the blobs that appeared in its storage
    requests: int
    built: list[str]
    result: Any
    load: str


class Bench:
    def __init__(self, tmp: Path, image: str):
        self.registry: LocalRegistry = start_registry(tmp / "registry", access_log=True)
        self.repo = Repo(tmp / "repo")
        self.image = image
        self.head: str | None = None  # the last commit built: the next plan's base

    def pyproject(self, heavy_mb: int) -> str:
        return (
            f'[tool.flowship]\nregistry = "{self.registry.host}/bench"\n'
            '[tool.flowship.images.heavy]\ntemplate = "docker/heavy.Dockerfile.j2"\n'
            'requirements = ["requirements.txt"]\n'
            f'args = {{ base_image = "{self.image}", heavy_mb = "{heavy_mb}" }}\n'
        )

    def measure(self, files: dict[str, str], **kwargs: Any) -> Measured:
        base, self.head = self.head, self.repo.commit(files)
        blobs = self.registry.blobs()
        log = self.registry.server.log
        offset = log.stat().st_size
        took, result = build(self.repo.path, base, **kwargs)
        time.sleep(0.2)  # the access log is written as answers finish
        lines = log.read_bytes()[offset:].decode("utf-8", "replace").splitlines()
        seen = [m for m in map(_ACCESS.search, lines) if m]
        pulled = sum(int(m["size"]) for m in seen if m["method"] == "GET" and m["size"] != "-")
        pushed = sum(n for d, n in self.registry.blobs().items() if d not in blobs)
        return Measured(took, pulled, pushed, len(seen), result.built, result, load())


def build(project: Path, base: str | None, **kwargs: Any) -> tuple[float, Any]:
    from flowship.changes import make_plan
    from flowship.config import load_config
    from flowship.images import build_images
    from flowship.scope import Scope

    config = load_config(project, os.environ)
    plan = make_plan(config, scope=Scope.main(), base=base, everything=base is None)
    log = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(log):  # the build log, kept out of the figures
        result = build_images(config, plan, **kwargs)
    took = time.perf_counter() - start
    if not result.ok:
        sys.exit(f"build failed: {result.failed}\n{log.getvalue()[-3000:]}")
    return took, result


def warm(bench: Bench, client: Any, heavy_mb: int) -> bool:
    """A code-only commit vs a deps rebuild, on a machine that has the deps image."""
    print(f"warm machine: first build of a {heavy_mb} MB deps image ...", file=sys.stderr)
    bench.measure({
        "pyproject.toml": bench.pyproject(heavy_mb), "docker/heavy.Dockerfile.j2": TEMPLATE,
        "requirements.txt": "packaging\n", "flows/etl.py": FLOW,
    })
    code = [bench.measure({"flows/etl.py": FLOW + f"\n# warm edit {i}\n"}) for i in range(3)]
    assert all(len(m.built) == 1 for m in code), [m.built for m in code]  # the code image only
    full = bench.measure({"requirements.txt": f"packaging\n# bumped {heavy_mb}\n"})
    assert len(full.built) == 2, full.built  # deps and code
    for m in (code[0], full):  # the disk back: both deps images and the code images on them
        forget(client, f"{bench.registry.host}/bench:{next(iter(m.result.images.values())).deps_tag}")
    took = statistics.median(m.wall for m in code)
    pushed = statistics.median(m.pushed for m in code)
    print(f"\n== warm machine, {heavy_mb} MB deps layer ==")
    print(f"{'':26}{'wall s':>10}{'pushed bytes':>16}")
    print(f"{'code-only (median of 3)':26}{took:>10.2f}{pushed:>16,.0f}   {code[1].load}")
    print(f"{'full deps rebuild':26}{full.wall:>10.2f}{full.pushed:>16,}   {full.load}")
    speed, share = full.wall / took, pushed / full.pushed
    ok = speed >= 10 and share < 0.05
    print(f"code-only is {speed:.1f}x faster and pushes {share:.4%} of the bytes (target: >=10x, <5%): "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def fresh(bench: Bench, client: Any, gb: int) -> bool:
    """A code-only commit on a runner whose daemon lacks the deps image: registry API vs docker FROM."""
    mb = gb * 1024
    print(f"fresh runner: building and pushing a deps image with a {gb} GB layer ...", file=sys.stderr)
    first = bench.measure({
        "pyproject.toml": bench.pyproject(mb), "docker/heavy.Dockerfile.j2": TEMPLATE,
        "requirements.txt": "packaging\n", "flows/etl.py": FLOW,
    })
    deps = next(iter(first.result.images.values()))
    forget(client, f"{bench.registry.host}/bench:{deps.deps_tag}")

    api = bench.measure({"flows/etl.py": FLOW + f"\n# fresh edit {gb} api\n"})
    image = next(iter(api.result.images.values()))
    assert image.code_via == "registry" and not image.deps_built, image
    manifest = json.loads(bench.registry.manifest("bench", image.code_tag)[0])
    layer = manifest["layers"][-1]["size"]  # the code layer, as uploaded (gzip)
    docker = bench.measure({"flows/etl.py": FLOW + f"\n# fresh edit {gb} docker\n"}, code_via="docker")
    assert next(iter(docker.result.images.values())).code_via == "docker"
    forget(client, f"{bench.registry.host}/bench:{deps.deps_tag}")  # the disk back

    print(f"\n== fresh runner, {gb} GB deps layer (deps build and push took {first.wall:.1f} s) ==")
    print(f"{'':26}{'wall s':>10}{'pulled bytes':>16}{'pushed bytes':>16}{'requests':>10}")
    for name, m in (("registry API (flowship)", api), ("docker build FROM", docker)):
        print(f"{name:26}{m.wall:>10.2f}{m.pulled:>16,}{m.pushed:>16,}{m.requests:>10}   {m.load}")
    speed = docker.wall / api.wall
    moved, bound = api.pulled + api.pushed, layer + 64 * 1024
    # The speed target is set for the 3 GB case (issue 12); smaller layers are reported beside it.
    fast = speed >= 100 if gb >= 3 else True
    ok = fast and moved <= bound
    target = ">=100x and " if gb >= 3 else ""
    print(f"registry API is {speed:.0f}x faster and moves {moved:,} bytes ({moved / (docker.pulled + docker.pushed):.5%} "
          f"of docker's {docker.pulled + docker.pushed:,}); target {target}<= "
          f"code layer {layer:,} + 64 KB = {bound:,}: {'PASS' if ok else 'FAIL'}")
    return ok


def forget(client: Any, ref: str) -> None:
    """Remove `ref` and every local image built on it, as a fresh runner would not have them."""
    import docker

    try:
        target = client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return
    for image in client.images.list():
        if image.id != target and any(target == p for p in _ancestry(client, image.id)):
            client.images.remove(image.id, force=True)
    client.images.remove(target, force=True)


def _ancestry(client: Any, image_id: str) -> list[str]:
    return [entry["Id"] for entry in client.api.history(image_id) if entry.get("Id", "").startswith("sha256:")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heavy-mb", type=int, default=200, help="deps layer of the warm-machine case")
    parser.add_argument("--fresh-gb", type=int, nargs="*", default=[1, 3], help="deps layers of the fresh-runner case")
    parser.add_argument("--no-warm", action="store_true", help="only the fresh-runner case")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    client = docker_client()
    if client is None:
        sys.exit("no Docker daemon: run scripts/setup.sh first")
    need = max(args.fresh_gb or [0]) * 3.5 * 2**30
    with tempfile.TemporaryDirectory(prefix="flowship-bench-") as tmp:
        free = shutil.disk_usage(tmp).free
        if need > free:
            sys.exit(f"--fresh-gb {max(args.fresh_gb)} needs about {need / 2**30:.0f} GiB free here; {free / 2**30:.0f} GiB are")
        print(f"{os.cpu_count()} CPUs, {load()} at the start", file=sys.stderr)
        bench = Bench(Path(tmp), python_base_image(client))
        try:
            ok = True if args.no_warm else warm(bench, client, args.heavy_mb)
            for gb in args.fresh_gb:
                ok = fresh(bench, client, gb) and ok
        finally:
            bench.registry.server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

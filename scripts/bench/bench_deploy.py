"""Benchmark deploying 200 workflows to a real local Prefect server, against `prefect deploy --all`.

In one run: generate a git repository with N trivial flows, each with a
flowship declaration, and a `prefect.yaml` declaring the same N flows on a
process pool; start a Prefect server of its own (SQLite); then time, each as
a fresh subprocess (interpreter start-up included):

- `flowship deploy --all --target local`, the first time (creates N deployments);
- the same again with nothing changed (the case CI hits on most commits);
- `prefect --no-prompt deploy --all` from the generated `prefect.yaml`, twice
  (the first creates, the second finds everything in place);
- the floor: a fresh process that upserts the same N deployments with raw
  sequential REST calls through one httpx client (create the flow, create
  the deployment with a body like flowship's: two requests each, nothing
  read or checked), under names of its own.

Then, in a second project of the same N flows deployed through a logging
proxy (testing/faults.py; the timed runs above go direct), it counts the HTTP
requests flowship makes per deployment, by endpoint.

It prints the wall times, the machine's load and the ratios. Goals: first
deploy >= 5x faster than `prefect deploy --all` and within 1.5x of the
floor; an unchanged redeploy >= 40x faster than `prefect deploy --all`.

Usage: python scripts/bench/bench_deploy.py [--flows 200] [--dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from testing.faults import FaultProxy  # noqa: E402
from testing.git import GIT_ENV, git  # noqa: E402
from testing.servers import start_prefect  # noqa: E402

BIN = Path(sys.executable).parent
POOL = "bench-process"

FLOW = '''from prefect import flow
from flowship import Workflow

workflow = Workflow(tags=["bench"])


@flow(name="bench-{i:03d}")
def bench_{i:03d}(n: int = {i}) -> int:
    return n * 2
'''


def generate(root: Path, flows: int) -> None:
    (root / "flows").mkdir(parents=True)
    for i in range(flows):
        (root / "flows" / f"bench_{i:03d}.py").write_text(FLOW.format(i=i))
    (root / "pyproject.toml").write_text(
        f'[tool.flowship]\nflows = "flows"\nproject = "bench"\n\n[tool.flowship.pools]\nlocal = "{POOL}"\n'
    )
    (root / ".gitignore").write_text(".flowship/\n")
    lines = ["name: bench", "prefect-version: 3.9.1", "pull:",
             "  - prefect.deployments.steps.set_working_directory:", f"      directory: {root}", "deployments:"]
    for i in range(flows):
        lines += [
            "  - name: prefect-yaml",
            f"    entrypoint: flows/bench_{i:03d}.py:bench_{i:03d}",
            "    tags: [bench]",
            "    work_pool:",
            f"      name: {POOL}",
        ]
    (root / "prefect.yaml").write_text("\n".join(lines) + "\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "200 flows")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(label: str, argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    print(f"  {label:<44} {took:7.1f} s   (load {load()})", flush=True)
    return took


# The floor: what any tool must send to make N deployments, and nothing else.
# Like every client of a SQLite-backed server, Prefect's own included, it sends a request
# again when the server answers 503 (busy) or 429, after a short backoff.
FLOOR = '''
import json, sys, time, httpx
api, pool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
schema = {"title": "Parameters", "type": "object", "properties": {"n": {"title": "n", "type": "integer", "default": 0}},
          "definitions": {}}
def post(client, path, body):
    for attempt in range(6):
        resp = client.post(path, json=body)
        if resp.status_code not in (429, 503):
            return resp.raise_for_status()
        time.sleep(0.2 * 2 ** attempt)
    return resp.raise_for_status()
with httpx.Client(base_url=api, timeout=60) as client:
    for i in range(n):
        flow = post(client, "/flows/", {"name": f"floor-{i:03d}"}).json()
        post(client, "/deployments/", {
            "name": "main", "flow_id": flow["id"], "work_pool_name": pool, "entrypoint": f"flows/bench_{i:03d}.py:bench",
            "path": "/tmp", "version": "0" * 40, "description": "floor", "tags": ["bench"], "parameters": {},
            "parameter_openapi_schema": schema, "job_variables": {}, "pull_steps": [], "enforce_parameter_schema": True,
            "paused": False, "schedules": [],
        })
'''


def count_requests(repo: Path, server_url: str, env: dict[str, str], flows: int) -> None:
    """flowship's first deploy of a second project of `flows` flows, through a logging proxy: requests by endpoint."""
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('project = "bench"', 'project = "bench-count"'))
    (repo / "flows").rename(repo / "counted")
    pyproject.write_text(pyproject.read_text().replace('flows = "flows"', 'flows = "counted"'))
    for path in (repo / "counted").iterdir():
        path.write_text(path.read_text().replace('name="bench-', 'name="counted-'))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a second project")
    with FaultProxy(server_url.removesuffix("/api")) as proxy:
        argv = [str(BIN / "flowship"), "--root", str(repo), "deploy", "--all", "--target", "local", "--branch", "main"]
        timed("flowship deploy --all (first, via the proxy)", argv, repo, env | {"PREFECT_API_URL": proxy.url + "/api"})
        seen = collections.Counter((r.method, re.sub(r"/[0-9a-f-]{36}|/counted-\d+", "/…", r.path)) for r in proxy.requests)
    print(f"HTTP requests of a first deploy: {sum(seen.values())} for {flows} deployments "
          f"({sum(seen.values()) / flows:.2f} each; the floor sends 2):")
    for (method, path), n in seen.most_common():
        print(f"  {n:6d}  {method} {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--dir", type=Path, help="work here (kept) instead of a temporary folder")
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="flowship-bench-deploy-"))
    if work.exists() and args.dir:
        shutil.rmtree(work)
    repo = work / "repo"
    generate(repo, args.flows)
    print(f"{args.flows} flows in {repo}; starting a Prefect server (SQLite)...", flush=True)
    server = start_prefect(work / "prefect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PREFECT_", "FLOWSHIP_"))}
    env |= GIT_ENV | {
        "PREFECT_API_URL": server.url,
        "PREFECT_HOME": str(work / "prefect-client"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    flowship = [str(BIN / "flowship"), "--root", str(repo), "deploy", "--all", "--target", "local", "--branch", "main"]
    prefect = [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"]
    try:
        print("wall time (each a fresh process):", flush=True)
        first = timed("flowship deploy --all (first)", flowship, repo, env)
        again = timed("flowship deploy --all (unchanged)", flowship, repo, env)
        p_first = timed("prefect deploy --all (first)", prefect, repo, env)
        p_again = timed("prefect deploy --all (unchanged)", prefect, repo, env)
        floor = timed("floor: raw sequential REST upserts", [sys.executable, "-c", FLOOR, server.url, POOL,
                                                              str(args.flows)], repo, env)
        count_requests(repo, server.url, env, args.flows)
    finally:
        server.stop()
    baseline = min(p_first, p_again)
    print("ratios (prefect deploy --all, the faster of its two runs, / flowship):")
    print(f"  first deploy      {baseline / first:6.1f}x   (goal: >= 5x)")
    print(f"  unchanged deploy  {baseline / again:6.1f}x   (goal: >= 40x)")
    print(f"  vs prefect's own unchanged rerun: {p_again / again:.1f}x")
    print(f"flowship's first deploy / the raw REST floor: {first / floor:.2f}x   (goal: <= 1.5x)")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

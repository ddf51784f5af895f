"""Benchmark one changed flow in a pull request, end to end, against the `prefect deploy` path.

The case users wait for on most pull requests: a commit changes one flow's
code; `flowship ci` plans it, makes its code image (the deps image is already
in the registry, so through the registry API: no docker build, nothing
pulled), registers its preview task definition and deploys the preview. On
the ECS target with the test suite's local stand-ins: a real Prefect server
(SQLite), moto in server mode as AWS (ECR's API, ECS, IAM, EC2), a real local
registry with the real Docker daemon, the GitHub API stand-in and real webhook
payloads, set up exactly as tests/commands/test_ci_ecs.py does (its helpers imported).

Prepared first (not timed): an account in moto, `flowship bootstrap`, a seed
commit of two flows (an `ml` GPU flow, a `base` CPU flow) deployed to main by
`flowship ci` for its push (deps and code images of both families pushed,
then mirrored into moto's ECR), and the parse cache that run left, as a pull
request's run restores main's cache. Then, for each round, a new commit on
the branch changes the CPU flow's file, and each of these is timed as fresh
processes (interpreter start-up included):

- `python -m flowship ci` for the pull_request event (`opened` first, then
  `synchronize`), until the process exits; the preview deployment is then
  read back from the Prefect API, with the time it was written (its
  `updated`), as seconds after the process started;
- the baseline, the `prefect deploy` path for the same flow with a docker
  build step, each step a fresh process, summed: `docker build` of a code
  image FROM the same deps image, which is in the local daemon (the seed
  built it: the warm case, favourable to the baseline; on a fresh runner it
  pulls the deps image first, see bench_images.py), `docker push` to the
  local registry, then `prefect --no-prompt deploy` of that one deployment
  from a generated prefect.yaml on the ECS work pool bootstrap made. It
  registers no task definition (Prefect's ECS worker does that per run), so
  it does less than flowship does.

It prints both, their ratio, the machine's load with each figure, the GitHub
API requests each run made, and a breakdown of each flowship run from the
times its log lines arrived (start-up until the first `console.group`, each
top-level group, the time between groups, the end until the process exited).
One more commit is then run without a GitHub token (no comment, no GitHub
deployment), outside the figures, to show what the GitHub side costs.
Target (issue 12): <= 4 s wall for flowship here, and faster than the prefect
path. The exit status is 0 when both hold, 1 otherwise.

Needs a Docker daemon, Debian's docker-registry and moto (scripts/setup.sh).

    .venv/bin/python scripts/bench/bench_e2e.py [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the helpers tests/commands/test_ci_ecs.py uses
import testing.ci  # noqa: E402
from conftest import AWS_TEST_ENV  # noqa: E402  (fake AWS credentials: boto3 must never find real ones)
from testing.ecs import ML_TEMPLATE, REGION, ci_pyproject, make_account  # noqa: E402
from testing.ci import REPO_NAME, ZERO, CiRunner, mirror_to_ecr, pr_payload, push_payload  # noqa: E402
from testing.deployments import read_back  # noqa: E402
from testing.docker import docker_client, python_base_image, start_registry  # noqa: E402
from testing.git import GIT_ENV, Repo, cpu_flow, seed_flow  # noqa: E402
from testing.github_server import GitHubServer  # noqa: E402
from testing.servers import BIN, start_moto, start_prefect  # noqa: E402

PR = 21
BRANCH = "feat/faster-etl"
CODE_DIR = "/opt/flowship/code"  # where flowship's code images put the repository (images/render.py)
_GROUP = re.compile(r"^[✓✗] (?P<title>.+) \((?P<took>[\d.]+)s\)$")  # a group's end (console.group)


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class Processes:
    """Stands in for `flowship.cli.main` inside CiRunner: the same argv and step
    environment, run as a fresh `python -m flowship` process, timed; its stderr
    is what `readouterr()` gives back (CiRunner's `capsys`), and `lines` has
    each stderr line with the second it arrived, counted from the start."""

    def __init__(self, base_env: dict[str, str]):
        self.base_env = base_env
        self.wall = 0.0
        self.started = 0.0  # epoch seconds, to compare with the server's timestamps
        self.err = ""
        self.lines: list[tuple[float, str]] = []

    def __call__(self, argv: list[str], env: dict[str, str]) -> int:
        self.started, self.lines = time.time(), []
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "flowship", *argv], env=self.base_env | env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append((time.perf_counter() - start, line.rstrip("\n")))
        code = proc.wait()
        self.wall = time.perf_counter() - start
        self.err = "\n".join(line for _, line in self.lines)
        return code

    def readouterr(self) -> SimpleNamespace:
        return SimpleNamespace(out="", err=self.err)

    def timeline(self) -> list[tuple[str, float]]:
        """The run as consecutive spans: start-up until the first line, each top-level group
        (nested ones folded in), the time between groups, and the end until the process exited."""
        spans: list[tuple[str, float]] = []
        depth, mark = 0, 0.0
        for at, line in self.lines:
            if line.startswith("::group::"):
                if depth == 0:
                    spans.append(("start-up" if not spans else "between", at - mark))
                    mark = at
                depth += 1
            elif (m := _GROUP.match(line)) and depth > 0:
                depth -= 1
                if depth == 0:
                    spans.append((m["title"], at - mark))
                    mark = at
        spans.append(("exit", self.wall - mark))
        return [(name, took) for name, took in spans if name not in ("between", "exit") or took >= 0.05]


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return took


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Baseline:
    """The `prefect deploy` path: docker build FROM the deps image, docker push, prefect deploy."""

    def __init__(self, work: Path, repo: Repo, deps_ref: str, address: str, pool: str, flow_file: str,
                 function: str, env: dict[str, str]):
        self.repo, self.address, self.env = repo, address, env
        self.dockerfile = work / "prefect-path" / "Dockerfile"
        self.dockerfile.parent.mkdir(parents=True)
        # What Prefect's docker build step generates: the project copied onto the base image.
        self.dockerfile.write_text(f"FROM {deps_ref}\nWORKDIR {CODE_DIR}\nCOPY . {CODE_DIR}/\n"
                                   f"ENV PYTHONPATH={CODE_DIR}\n")
        self.prefect_yaml = self.dockerfile.parent / "prefect.yaml"
        self.deployment = f"prefect-pr-{PR}"
        self.template = (
            "name: bench-e2e\nprefect-version: 3.9.1\nbuild: null\npush: null\n"
            "pull:\n  - prefect.deployments.steps.set_working_directory:\n"
            f"      directory: {CODE_DIR}\n"
            "deployments:\n"
            f"  - name: {self.deployment}\n"
            f"    entrypoint: {flow_file}:{function}\n"
            "    tags: [bench]\n"
            "    work_pool:\n"
            f"      name: {pool}\n"
            "      job_variables:\n"
            "        image: {image}\n"
        )

    def __call__(self, head: str) -> dict[str, float]:
        image = f"{self.address}:prefect-{head}"
        self.prefect_yaml.write_text(self.template.format(image=image))
        steps = {
            "docker build": timed(["docker", "build", "-q", "-f", str(self.dockerfile), "-t", image, "."],
                                  self.repo.path, self.env),
            "docker push": timed(["docker", "push", "-q", image], self.repo.path, self.env),
            "prefect deploy": timed([str(BIN / "prefect"), "--no-prompt", "deploy", "--prefect-file",
                                     str(self.prefect_yaml), "--name", self.deployment], self.repo.path, self.env),
        }
        return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="commits timed: `opened`, then `synchronize`s")
    parser.add_argument("--dir", type=Path, help="work here (kept) instead of a temporary folder")
    args = parser.parse_args()

    client = docker_client()
    if client is None:
        sys.exit("no Docker daemon: run scripts/setup.sh first")
    work = args.dir or Path(tempfile.mkdtemp(prefix="flowship-bench-e2e-"))
    if args.dir and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, {load()} at the start; starting Prefect, moto, a registry, GitHub's stand-in ...",
          flush=True)
    prefect, moto = start_prefect(work / "prefect"), start_moto(work / "moto")
    registry = start_registry(work / "registry")
    github = GitHubServer().__enter__()
    try:
        return bench(args, work, client, prefect, moto, registry, github)
    finally:
        github.__exit__()
        for server in (prefect, moto, registry.server):
            server.stop()
        for image in client.images.list():  # what this run tagged for its registry (its port is never reused)
            for tag in image.tags:
                if tag.startswith(registry.host + "/"):
                    try:
                        client.images.remove(tag)
                    except Exception:
                        pass  # in use or already gone: a tag left behind is harmless
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def bench(args, work, client, prefect, moto, registry, github) -> int:
    import boto3

    from flowship.scope import Scope

    os.environ.update(AWS_TEST_ENV | GIT_ENV | {"AWS_ENDPOINT_URL": moto.url})
    python_image = python_base_image(client)
    suffix = uuid.uuid4().hex[:6]
    project, pool = f"e2e-{suffix}", f"ecs-pool-{suffix}"
    gpu_fn, cpu_fn = f"train_{suffix}", f"etl_{suffix}"
    cpu = cpu_fn.replace("_", "-")
    gpu_file, cpu_file = f"flows/{gpu_fn}.py", f"flows/{cpu_fn}.py"

    # -- preparation, as tests/commands/test_ci_ecs.py: the account, bootstrap, main deployed ----
    account = make_account()
    settings = ci_pyproject(account, project=project, pool=pool, python_image=python_image, registry_host=registry.host)
    repo = Repo(work / "repo")
    seed = repo.commit({
        "pyproject.toml": settings, ".gitignore": ".flowship/\n", "docker/ml.Dockerfile.j2": ML_TEMPLATE,
        gpu_file: seed_flow(gpu_fn), cpu_file: cpu_flow(cpu_fn),
    }, message="seed")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PREFECT_", "FLOWSHIP_"))}
    base_env |= {
        "PREFECT_HOME": str(work / "prefect-client"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "HOME": str(work / "home"),
        "XDG_CACHE_HOME": str(work / "home" / ".cache"),
    }
    token = f"ghs_{uuid.uuid4().hex}"
    github.add_repo(REPO_NAME)
    github.add_token(token)
    env = {"PREFECT_API_URL": prefect.url, "AWS_ENDPOINT_URL": moto.url, "FLOWSHIP_TARGET": "ecs",
           "GITHUB_TOKEN": token, "FLOWSHIP_CACHE_DIR": str(work / "parse-cache")}
    processes = Processes(base_env)
    testing.ci.main = processes  # CiRunner runs `flowship ci` as a fresh process, not in this one
    if processes(["--root", str(repo.path), "bootstrap", "--no-stack"], env) != 0:
        sys.exit(f"bootstrap failed:\n{processes.err[-4000:]}")
    ci = CiRunner(repo.path, work, env, github)
    print("seed: `flowship ci` for the push to main (deps and code images of both families) ...", flush=True)
    step = ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=seed), processes)
    if step.code != 0 or sorted(step.images) != ["base", "ml"]:
        sys.exit(f"the seed deploy failed ({step.code}):\n{step.log[-4000:]}")
    print(f"  took {processes.wall:.1f} s ({load()})", flush=True)
    mirror_to_ecr(registry, project, boto3.client("ecr", region_name=REGION), project)
    address = f"{registry.host}/{project}"
    [deps_tag] = [t for t in registry.tags(project) if t.startswith("base-deps-")]
    deps_ref = f"{address}:{deps_tag}"
    client.images.get(deps_ref)  # the baseline's warm case: the deps image is in the local daemon
    baseline_env = base_env | {"PREFECT_API_URL": prefect.url}
    baseline = Baseline(work, repo, deps_ref, address, pool, cpu_file, cpu_fn, baseline_env)
    preview = Scope.preview(BRANCH, pr=PR).name

    # -- the timed rounds: each a commit on the branch changing the CPU flow's file -----
    repo.git("checkout", "-q", "-b", BRANCH)
    github.add_pull(REPO_NAME, PR, title="Faster ETL", head=BRANCH)
    print(f"\none changed flow in pull request #{PR}, {args.rounds} commits (each timed as fresh processes):",
          flush=True)
    flowship_walls, prefect_walls, breakdowns = [], [], []
    for i in range(args.rounds):
        action = "opened" if i == 0 else "synchronize"
        head = repo.commit({cpu_file: cpu_flow(cpu_fn).replace("rows: int = 10", f"rows: int = {20 + i}")})
        seen = len(github.state.requests)
        step = ci("pull_request", pr_payload(action, number=PR, branch=BRANCH, head=head, base=seed), processes)
        wall, started, flowship_load = processes.wall, processes.started, load()
        asked = github.state.requests[seen:]
        writes = sum(r.method != "GET" for r in asked)
        expected = {f"{cpu}/{preview}": "created" if i == 0 else "updated"}
        if step.code != 0 or step.deployments != expected:
            sys.exit(f"`flowship ci` ({action}) failed ({step.code}, {step.deployments}):\n{step.log[-4000:]}")
        live = read_back(prefect.url, [cpu])[f"{cpu}/{preview}"]
        image = live["job_variables"].get("image") or step.images["base"]
        appeared = epoch(live["updated"]) - started
        via = "registry API" if "docker build" not in step.log.lower() else "docker build"
        steps = baseline(head)
        total = sum(steps.values())
        flowship_walls.append(wall)
        prefect_walls.append(total)
        breakdowns.append(processes.timeline())
        (work / f"ci-{i + 1}.log").write_text("".join(f"{at:7.3f} {line}\n" for at, line in processes.lines))
        print(f"  {i + 1}. {action:<11} flowship ci {wall:5.2f} s (preview written at +{appeared:.2f} s; code image "
              f"by {via}; {len(asked)} GitHub requests, {writes} writes; {flowship_load})", flush=True)
        print(f"     {'':11} prefect path {total:5.2f} s = " + " + ".join(f"{k} {v:.2f}" for k, v in steps.items())
              + f"   ({load()})", flush=True)
        if i == 0:
            print(f"     preview image {image}", flush=True)

    # The same once more without a GitHub token: no comment, no GitHub deployment (what they cost).
    head = repo.commit({cpu_file: cpu_flow(cpu_fn).replace("rows: int = 10", "rows: int = 99")})
    step = ci("pull_request", pr_payload("synchronize", number=PR, branch=BRANCH, head=head, base=seed), processes,
              GITHUB_TOKEN="")
    if step.code != 0 or step.deployments != {f"{cpu}/{preview}": "updated"}:
        sys.exit(f"`flowship ci` without a token failed ({step.code}, {step.deployments}):\n{step.log[-4000:]}")
    print(f"  +. without a GitHub token (no comment, no GitHub deployment; not in the figures below): flowship ci "
          f"{processes.wall:.2f} s   ({load()})", flush=True)
    no_github = processes.timeline()

    print("\nbreakdown of each flowship run, s (from the times its log lines arrived: start-up until the first\n"
          "group, each top-level group, the time between groups, and from the last line to the exit):")
    for wall, parts in zip(flowship_walls, breakdowns, strict=True):
        print("  " + " | ".join(f"{title} {t:.2f}" for title, t in parts) + f"  = {wall:.2f}")
    print("  without a token: " + " | ".join(f"{title} {t:.2f}" for title, t in no_github) + f"  = {processes.wall:.2f}")
    floor = timed([sys.executable, "-m", "flowship", "--version"], repo.path, base_env)
    print(f"  (a bare `python -m flowship --version` process: {floor:.2f} s)")
    best, median = min(flowship_walls), statistics.median(flowship_walls)
    base_best = min(prefect_walls)
    print(f"\nflowship ci: best {best:.2f} s, median {median:.2f} s (target <= 4 s): {'PASS' if best <= 4 else 'FAIL'}")
    print(f"prefect path (warm docker build + push + prefect deploy): best {base_best:.2f} s, "
          f"median {statistics.median(prefect_walls):.2f} s")
    print(f"ratio (prefect path / flowship ci): best {base_best / best:.2f}x, median "
          f"{statistics.median(prefect_walls) / median:.2f}x (target > 1x)   ({load()} at the end)")
    return 0 if best <= 4 and base_best > best else 1


if __name__ == "__main__":
    sys.exit(main())

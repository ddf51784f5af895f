"""An outage fails fast and still reports, and the next run puts it right.

Prefect stops answering in the middle of a deploy of 20 flows (a real proxy
in front of the session's real server drops every request from some point
on). The deploy gives up on the first request that fails after the client's
own retries, fails every flow it did not try yet with one reason, and the
run ends in seconds with its summary and outputs written, instead of each
flow spending Prefect's ~70 s of retries (22 flows took 1,549 s before).
With the server back, the same event converges: every flow on the head,
nothing duplicated. A job cancelled mid-deploy (SIGINT, as the runner sends)
still writes its summary and outputs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flowship.deploy.client import MAX_RETRIES
from flowship.actions.report import md
from testing.ci import ZERO, CiRunner, push_payload
from testing.deployments import read_back, recorded as recorded_commit
from testing.faults import FaultProxy, Rule
from testing.git import Repo, cpu_flow
from testing.github_server import parse_outputs

pytestmark = pytest.mark.integration

FLOWS = 20
WRITES_BEFORE = 8  # deployment writes that go through before the server goes away
DEPLOYMENT_POST = "/api/deployments/"
# What Prefect's client would spend on one request without flowship's cap (2+4+8+16+32 s).
DEFAULT_RETRY_SECONDS = 62


class Outage(Rule):
    """Once `after` deployment writes went through, every request is dropped (the server is
    gone), or answered `status` (a gateway with nothing behind it)."""

    def __init__(self, after: int, status: int | None = None):
        super().__init__(None, re.compile(".*"), drop=status is None, status=status or 500)
        self.after = after
        self.writes = 0

    def hit(self, method: str, path: str, body: bytes = b"") -> bool:
        if self.writes >= self.after:
            self.fired += 1
            return True
        self.writes += method == "POST" and path == DEPLOYMENT_POST
        return False


def go_down_after(proxy: FaultProxy, writes: int, status: int | None = None) -> Outage:
    rule = Outage(writes, status)
    with proxy.lock:
        proxy.rules.append(rule)
    return rule


class Flows:
    """20 flows in one repository, named uniquely on the shared server."""

    def __init__(self, repo: Repo):
        self.repo = repo
        self.suffix = uuid.uuid4().hex[:6]
        self.modules = [f"out_{self.suffix}_{i:02d}" for i in range(FLOWS)]
        self.names = [m.replace("_", "-") for m in self.modules]

    def seed(self) -> str:
        return self.repo.commit({
            "pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "p{self.suffix}"\n'
                              f'[tool.flowship.pools]\nlocal = "pool-{self.suffix}"\n',
            ".gitignore": ".flowship/\n",
        } | {f"flows/{m}.py": cpu_flow(m) for m in self.modules}, message="seed")

    def recorded(self, api: str) -> str | None:
        return recorded_commit(api, f"p{self.suffix}")


@pytest.fixture
def proxy(prefect_proxy):
    return prefect_proxy


@pytest.fixture
def flows(repo) -> Flows:
    return Flows(repo)


def test_prefect_going_away_mid_deploy_fails_the_rest_at_once_and_a_rerun_converges(
    flows, proxy, prefect_server, repo, tmp_path, capsys,
):
    api, via = prefect_server.url, proxy.url + "/api"
    ci = CiRunner(repo.path, tmp_path, {"PREFECT_API_URL": via, "FLOWSHIP_TARGET": "local"})
    head = flows.seed()
    outage = go_down_after(proxy, WRITES_BEFORE)

    started = time.monotonic()
    step = ci("push", push_payload(before=ZERO, after=head), capsys)
    took = time.monotonic() - started
    with capsys.disabled():
        print(f"\n{FLOWS} flows, Prefect gone after {WRITES_BEFORE} writes: the run took {took:.1f} s "
              f"({outage.fired} requests dropped; retries capped at {MAX_RETRIES})")

    assert step.code == 1, step.log
    assert "Traceback" not in step.log and "unexpected error" not in step.log
    # Far less than one flow's worth of Prefect's default retries per flow left.
    assert took < 5 * DEFAULT_RETRY_SECONDS < (FLOWS - WRITES_BEFORE) * DEFAULT_RETRY_SECONDS
    # The outputs list every flow: those written, the one that found the server gone,
    # and every other one, not tried, with the one reason.
    statuses = step.deployments
    assert list(statuses) == [f"{n}/main" for n in flows.names]
    done = [n for n, s in statuses.items() if s == "created"]
    assert 1 <= len(done) <= WRITES_BEFORE and done == list(statuses)[:len(done)]
    rest = list(statuses)[len(done):]
    assert all(statuses[n] == "failed" for n in rest) and len(rest) >= FLOWS - WRITES_BEFORE
    reason = f"not tried: Prefect at {via} stopped answering."
    errors = [line for line in step.log.splitlines() if line.startswith("::error")]
    [found_gone] = [e for e in errors if rest[0] in e]
    assert f"cannot reach Prefect at {via} (" in found_gone, found_gone
    for name in rest[1:]:
        [line] = [e for e in errors if name in e]
        assert line.endswith(f"::{name}: {reason}"), line
    # The summary is written and says the same.
    assert md(reason) in step.summary and step.summary.count(md(reason)) == len(rest) - 1, step.summary
    # Nothing was recorded: the next run deploys what this one did not.
    assert flows.recorded(api) is None
    # Dropped: the request that found the server gone and its retries, then (the breaker
    # open) one try at releasing the deploy lock, and at most a renewal of it.
    assert outage.fired <= MAX_RETRIES + 3, proxy.requests[-10:]

    # Prefect is back: the same event again converges on the head, no duplicates.
    proxy.heal()
    before = read_back(api, flows.names)
    started = time.monotonic()
    step = ci("push", push_payload(before=ZERO, after=head), capsys)
    with capsys.disabled():
        waited = "another deploy to main is running" in step.log
        print(f"the rerun took {time.monotonic() - started:.1f} s"
              + (" (waiting for the lock the cut-off run could not release)" if waited else ""))
    assert step.code == 0, step.log
    assert step.deployments == {f"{n}/main": "unchanged" if f"{n}/main" in done else "created"
                                for n in flows.names}
    after = read_back(api, flows.names)
    assert sorted(after) == sorted(f"{n}/main" for n in flows.names)
    assert {d["version"] for d in after.values()} == {head}
    assert all(after[n]["id"] == before[n]["id"] for n in done)  # the ones written before were not made again
    assert flows.recorded(api) == head


class Job:
    """`python -m flowship ci` as a step of a real job: its own process, its GITHUB_* files."""

    def __init__(self, repo: Repo, tmp: Path, api: str, head: str, **env: str):
        event, self.output, self.summary = tmp / "event.json", tmp / "output", tmp / "summary.md"
        event.write_text(json.dumps(push_payload(before=ZERO, after=head)))
        self.env = os.environ | {
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event),
            "GITHUB_OUTPUT": str(self.output), "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_REPOSITORY": "octo/flows", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "9",
            "GITHUB_SHA": head, "GITHUB_REF": "refs/heads/main", "PREFECT_API_URL": api, "FLOWSHIP_TARGET": "local",
        } | env
        self.argv = [sys.executable, "-m", "flowship", "--root", str(repo.path), "ci"]

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output.read_text())


def test_a_gateway_with_nothing_behind_it_opens_the_breaker_too(flows, proxy, repo, tmp_path):
    via = proxy.url + "/api"
    head = flows.seed()
    # A retry setting of the user's own is kept (flowship's cap is only its default).
    job = Job(repo, tmp_path, via, head, PREFECT_CLIENT_MAX_RETRIES="1")
    go_down_after(proxy, 2, status=502)  # a load balancer whose server went away

    log, _ = job.start().communicate(timeout=300)

    statuses = list({d["deployment"]: d["status"] for d in json.loads(job.outputs()["deployments"])}.items())
    assert statuses[:2] == [(f"{n}/main", "created") for n in flows.names[:2]], log
    assert {s for _, s in statuses[2:]} == {"failed"} and len(statuses) == FLOWS
    errors = [line for line in log.splitlines() if line.startswith("::error")]
    [first] = [e for e in errors if f"{flows.names[2]}/main" in e]
    assert "Prefect answered 502" in first, first
    reason = f"not tried: Prefect at {via} stopped answering."
    assert sum(e.endswith(reason) for e in errors) == FLOWS - 3
    assert md(reason) in job.summary.read_text()
    # The request that found the gateway empty (creating the third flow: under an intact deploy
    # lease nothing is read before a write) was tried twice (one retry, as asked), and none after it.
    failed = [r for r in proxy.requests if r.injected]
    assert [(r.method, r.path) for r in failed[:2]] == [("POST", "/api/flows/")] * 2, failed
    assert not any(r.path.startswith(("/api/deployments", "/api/flows")) for r in failed[2:]), failed


def test_a_cancelled_deploy_still_writes_its_summary_and_outputs(flows, proxy, repo, tmp_path):
    head = flows.seed()
    job = Job(repo, tmp_path, proxy.url + "/api", head)
    # The server goes away mid-deploy, so the run sits in the client's retries when the job is cancelled.
    outage = go_down_after(proxy, WRITES_BEFORE)
    proc = job.start()
    deadline = time.monotonic() + 120
    while outage.fired == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outage.fired > 0 and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    proxy.heal()  # so the deploy lock's release on the way out goes through
    log, _ = proc.communicate(timeout=120)

    assert proc.returncode == 130, log
    assert "::error::interrupted." in log and "Traceback" not in log
    summary = job.summary.read_text()
    assert summary.startswith("## flowship: production deploy of main\n") and md("Failed: interrupted.") in summary
    plan = json.loads(job.outputs()["plan"])
    assert plan["head"] == head and len(plan["workflows"]) == FLOWS

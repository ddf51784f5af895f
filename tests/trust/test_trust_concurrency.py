"""Two real `flowship deploy` processes for one scope at once never move it backwards.

A newer commit C3 and an older C2 both touch all 30 flows; C1 is deployed
first. The two deploys race as separate processes against the session's
Prefect server, started 0 s, 0.3 s and 1 s apart, either one first. However
they interleave, every deployment and the scope's record end on C3: the deploy
lock (deploy/lease.py) keeps them from interleaving their writes, and the
older one either deploys C2 over C1 before C3 comes, or skips every flow as
older. A process that found the lock taken says in its log that it waited.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from testing.deployments import FLOW, read_back, uid
from testing.faults import FaultProxy, Seen
from testing.git import Repo

pytestmark = pytest.mark.integration

FLOWS = 30
DEPLOYMENT_POST = "/api/deployments/"
LOCK_TAKE = "/api/v2/concurrency_limits/increment-with-lease"
LINE = re.compile(r"^(?:warning: )?(created|updated|unchanged|skipped|failed)\s+(\S+)/main\b(.*)$")


@dataclass
class Deploy:
    """One `python -m flowship deploy` process and its log, read as it runs (so no pipe fills)."""

    label: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(10)
        return code

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def outcomes(self) -> dict[str, tuple[str, str]]:
        """flow -> (status, detail) from the per-deployment lines printed as each is done."""
        return {m[2]: (m[1], m[3].strip()) for text in self.lines if (m := LINE.match(text))}


class Stamped(FaultProxy):
    """A proxy that injects nothing and notes when each answer came back."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.stamped: list[tuple[float, Seen]] = []

    def _log(self, seen: Seen) -> None:
        super()._log(seen)
        with self.lock:
            self.stamped.append((time.monotonic(), seen))

    def writes(self) -> list[float]:
        """When each deployment write was answered."""
        with self.lock:
            return [t for t, s in self.stamped if s.method == "POST" and s.path == DEPLOYMENT_POST and s.status in (200, 201)]

    def refusals(self) -> int:
        """How often the server said the scope's lock was taken (423 Locked)."""
        return sum(s.status == 423 for s in self.seen("POST", LOCK_TAKE))


def start(repo: Path, api: str, head: str, base: str, label: str) -> Deploy:
    env = os.environ | {"PREFECT_API_URL": api, "PYTHONUNBUFFERED": "1"}
    env.pop("GITHUB_ACTIONS", None)
    argv = [sys.executable, "-m", "flowship", "--root", str(repo), "deploy",
            "--base", base, "--head", head, "--branch", "main", "--target", "local"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return Deploy(label, proc)


def flow_file(name: str, label: str) -> str:
    function = name.replace("-", "_")
    return FLOW.format(name=name, function=function,
                       declaration="machine=AwsEcsMachine(cpu_value=256, memory_value=512)").replace(
        'label: str = "a"', f'label: str = "{label}"')


def recorded(api: str, project: str) -> str | None:
    resp = httpx.get(f"{api}/variables/name/flowship_deployed_{project}_main")
    return None if resp.status_code == 404 else resp.json()["value"]


@pytest.fixture
def history(repo: Repo, prefect_api: str) -> tuple[Repo, str, list[str], list[str]]:
    """30 flows, commits C1 -> C2 -> C3 each touching all of them, and C1 deployed."""
    suffix = uid()
    project = f"race-{suffix}"
    names = [f"race-{suffix}-{i:02d}" for i in range(FLOWS)]
    repo.write({"pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "{project}"\n'
                                  f'[tool.flowship.pools]\nlocal = "pool-{suffix}"\n',
                ".gitignore": ".flowship/\n"})
    commits = []
    for label in ("c1", "c2", "c3"):
        files = {f"flows/{n.replace('-', '_')}.py": flow_file(n, label) for n in names}
        commits.append(repo.commit(files, message=label))
    env = os.environ | {"PREFECT_API_URL": prefect_api}
    done = subprocess.run([sys.executable, "-m", "flowship", "--root", str(repo.path), "deploy", "--all",
                           "--head", commits[0], "--branch", "main", "--target", "local"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {d["version"] for d in read_back(prefect_api, names).values()} == {commits[0]}
    assert recorded(prefect_api, project) == commits[0]
    return repo, project, names, commits


@pytest.mark.parametrize("older_first", [False, True], ids=["newer-first", "older-first"])
@pytest.mark.parametrize("offset", [0.0, 0.3, 1.0], ids=["0s", "0.3s", "1s"])
def test_a_newer_and_an_older_deploy_racing_end_on_the_newer(history, prefect_server, offset, older_first):
    repo, project, names, (c1, c2, c3) = history
    api = prefect_server.url
    order = [(c2, "C2"), (c3, "C3")] if older_first else [(c3, "C3"), (c2, "C2")]
    runs: dict[str, Deploy] = {}
    # Each process talks to the server through a proxy of its own, so the test sees
    # which requests each one made, when the server answered them, and how.
    with Stamped(api.removesuffix("/api")) as p2, Stamped(api.removesuffix("/api")) as p3:
        proxies = {"C2": p2, "C3": p3}
        for i, (head, label) in enumerate(order):
            if i:
                time.sleep(offset)
            runs[label] = start(repo.path, proxies[label].url + "/api", head, c1, label)
        codes = {label: run.wait(300) for label, run in runs.items()}
    newer, older = runs["C3"], runs["C2"]

    # Both end well: no error, nothing failed.
    assert codes == {"C3": 0, "C2": 0}, f"C3:\n{newer.log}\n\nC2:\n{older.log}"
    # Every deployment, and the record, ends on the newer commit.
    assert {n: d["version"] for n, d in read_back(api, names).items()} == {f"{n}/main": c3 for n in names}
    assert recorded(api, project) == c3

    # The newer one deployed every flow; the older one skipped every flow as
    # older (writing no deployment), or deployed C2 over C1 entirely before C3 came.
    assert newer.outcomes() == {n: ("updated", newer.outcomes()[n][1]) for n in names}, newer.log
    old = older.outcomes()
    assert set(old) == set(names), older.log
    statuses = {s for s, _ in old.values()}
    if statuses == {"skipped"}:
        assert all(f"it runs {c3[:12]}, which is newer than {c2[:12]}" in d for _, d in old.values()), older.log
        assert "was not recorded as the last deployed commit of main" in older.log
        assert p2.writes() == []
        first, second = "C3", "C2"
    else:
        assert statuses == {"updated"}, older.log
        first, second = "C2", "C3"
        # The lock kept their writes apart: every deployment write of the first was
        # answered before the second wrote any.
        assert len(p2.writes()) == len(p3.writes()) == FLOWS
        assert max(p2.writes()) < min(p3.writes())

    # The server refused the second its lock (423) exactly when the first held it,
    # and then the second said that it was waiting.
    refused = proxies[second].refusals()
    waited = "another deploy to main is running; waiting" in runs[second].log
    print(f"offset {offset}s, {order[0][1]} started first, {first} took the lock first; "
          f"{second} was refused {refused} time(s), said it waited: {waited}")
    assert proxies[first].refusals() == 0
    assert "another deploy to main is running" not in runs[first].log
    assert waited == (refused > 0), runs[second].log
    if refused:
        assert re.search(r"got the deploy lock of main after \d+\.\d s", runs[second].log), runs[second].log


# -- the re-read before each write, and when it is needed --------------------------------
def test_a_lease_is_intact_until_a_renewal_fails_or_is_late():
    import time as clock

    from flowship.deploy import lease

    held = lease.Lease(clock.monotonic())
    assert held.intact()
    held.renewed_at -= lease.LEASE_SECONDS - lease.RENEW_SECONDS  # the server may expire it before the next renewal
    assert not held.intact()
    held = lease.Lease(clock.monotonic())
    held.lost = True
    assert not held.intact()


def _requests_of(config, run):
    """Every request (`METHOD path`) a deploy made through its own client, as answered.

    An answer Prefect's client sends again (a SQLite server's 503 when it is busy) is not
    counted: the retry is the same request, counted once, when it is answered.
    """
    from flowship.deploy.client import open_client
    from testing.deployments import RETRIED

    seen: list[str] = []

    def answered(response) -> None:
        if response.status_code not in RETRIED:
            seen.append(f"{response.request.method} {response.request.url.path}")

    hooks = {"event_hooks": {"response": [answered]}}
    with open_client(config, httpx_settings=hooks) as client:
        result = run(client)
    return result, seen


def test_under_an_intact_lease_a_deploy_trusts_its_read_and_once_lost_reads_before_each_write(
        repo, prefect_api, monkeypatch):
    """The scope's deployments are read under the lease, so while it holds no flowship deploy can
    have written since: no read per write. With the lease lost, a stale read (here: another deploy
    put the newer commit there after it) is caught by the read right before the write."""
    from flowship.deploy import LocalTarget, deploy_plan, lease, remote
    from flowship.scope import Scope
    from flowship.workflow import Workflow
    from testing.deployments import FlowRepo

    flows = FlowRepo.create(repo, prefect_api)
    names = [f"lease-{uid()}" for _ in range(3)]
    for name in names:
        flows.write_flow(name, Workflow())
    older = flows.repo.commit(message="three flows")
    newer = flows.repo.commit({"README.md": "newer\n"}, message="newer")
    config = flows.config

    first, seen = _requests_of(config, lambda c: deploy_plan(config, flows.plan(Scope.main(), older, names),
                                                             LocalTarget(config), client=c))
    assert sorted(first.created) == sorted(f"{n}/main" for n in names)
    assert not [r for r in seen if r.startswith("GET /api/deployments/name/")]
    assert len([r for r in seen if r == "POST /api/deployments/"]) == 3

    deploy_plan(config, flows.plan(Scope.main(), newer, names), LocalTarget(config))  # another deploy: newer
    monkeypatch.setattr(lease.Lease, "intact", lambda self: False)
    monkeypatch.setattr(remote, "deployments_of", lambda *args, **kwargs: {})  # read before that deploy wrote
    late, seen = _requests_of(config, lambda c: deploy_plan(config, flows.plan(Scope.main(), older, names),
                                                            LocalTarget(config), client=c))
    assert sorted(late.skipped) == sorted(f"{n}/main" for n in names), late.outcomes
    assert len([r for r in seen if r.startswith("GET /api/deployments/name/")]) == 3
    assert not [r for r in seen if r == "POST /api/deployments/"]
    assert {d["version"] for d in read_back(prefect_api, names).values()} == {newer}

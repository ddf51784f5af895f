"""Small flow repositories and read-backs for the deployment tests.

Every test names its flows with a fresh suffix: the Prefect server is shared
by the whole session, and flow names are global on it.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flowship.config import Config, load_config
from flowship.plan import Deletion, Plan, PlannedWorkflow
from flowship.scope import Scope, deployment_name
from flowship.workflow import Workflow

from testing.git import Repo

FLOW = '''
from prefect import flow

from flowship import AwsEcsMachine, Workflow

workflow = Workflow({declaration})


@flow(name="{name}", log_prints=True)
def {function}(x: int = 1, label: str = "a") -> int:
    """Doubles x.

    Args:
        x: the number to double
    """
    if x < 0:
        raise ValueError("x must not be negative")
    print(f"doubling {{x}} ({{label}})")
    return x * 2
'''


def uid() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class FlowRepo:
    """A git repository of flows, and the Plans that deploy them."""

    repo: Repo
    api: str
    pool: str
    declarations: dict[str, Workflow] = field(default_factory=dict)

    @classmethod
    def create(cls, repo: Repo, api: str) -> FlowRepo:
        pool = f"pool-{uid()}"
        # A project of its own: the last deployed commit is recorded per project and scope.
        repo.write({"pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "p-{uid()}"\n'
                                      f'[tool.flowship.pools]\nlocal = "{pool}"\n'})
        return cls(repo, api, pool)

    @property
    def config(self) -> Config:
        return load_config(self.repo.path, {"PREFECT_API_URL": self.api})

    def write_flow(self, name: str, workflow: Workflow, declaration: str = "machine=AwsEcsMachine(cpu_value=256, memory_value=512)") -> None:
        function = name.replace("-", "_")
        self.repo.write({f"flows/{function}.py": FLOW.format(name=name, function=function, declaration=declaration)})
        self.declarations[name] = workflow

    def planned(self, name: str, scope: Scope) -> PlannedWorkflow:
        function = name.replace("-", "_")
        file = f"flows/{function}.py"
        workflow = self.declarations[name]
        return PlannedWorkflow(name, file, f"{file}:{function}", deployment_name(name, scope), workflow.machine.family,
                               workflow, reasons=(file,), line=7)

    def plan(self, scope: Scope, head: str, names: list[str], delete: list[str] = ()) -> Plan:
        return Plan(
            base=None, head=head, scope=scope,
            workflows=tuple(self.planned(n, scope) for n in names),
            delete=tuple(Deletion(n, deployment_name(n, scope)) for n in delete),
        )


def _post(api: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as resp:
        return json.loads(resp.read())


def read_back(api: str, flow_names: list[str]) -> dict[str, dict[str, Any]]:
    """Every deployment of these flows, as the server stores it (raw JSON), by `flow/name`."""
    flows = _post(api, "/flows/filter", {"flows": {"name": {"any_": flow_names}}})
    names = {f["id"]: f["name"] for f in flows}
    found = _post(api, "/deployments/filter", {"flows": {"id": {"any_": list(names)}}}) if names else []
    return {f"{names[d['flow_id']]}/{d['name']}": d for d in found}


# The answers Prefect's client retries (PREFECT_CLIENT_RETRY_EXTRA_CODES aside): not another request.
RETRIED = frozenset({408, 429, 502, 503})


@contextmanager
def counting_client(config: Config, *, with_lock: bool = False) -> Iterator[tuple[Any, list[str]]]:
    """A Prefect client that records every request that could write (`METHOD path`).

    The deploy lock's take and release (deploy/lease.py) happen on every deploy,
    so they are left out unless `with_lock`: "a rerun writes nothing" is about
    deployments, variables and automations.
    """
    from flowship.deploy.client import open_client

    writes: list[str] = []

    def record(response: Any) -> None:
        request, path = response.request, response.request.url.path
        # An answer the client sends again (a busy SQLite server's 503) is the same write, counted when answered.
        if response.status_code in RETRIED:
            return
        if request.method != "GET" and not path.endswith("/filter"):
            if not with_lock and "/v2/concurrency_limits/" in path:
                return
            writes.append(f"{request.method} {path}")

    with open_client(config, httpx_settings={"event_hooks": {"response": [record]}}) as client:
        yield client, writes


def recorded(api: str, project: str, scope: str = "main") -> str | None:
    """The scope's last deployed commit as flowship keeps it (a Prefect variable), read straight from the server."""
    import httpx

    resp = httpx.get(f"{api}/variables/name/flowship_deployed_{project}_{scope}")
    return None if resp.status_code == 404 else resp.json()["value"]

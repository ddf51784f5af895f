"""The last commit deployed to each scope, kept on the Prefect server itself.

Planning compares from that commit, so a pipeline that failed or was skipped
is caught up by the next one. It lives in a Prefect Variable per scope
(names allow only lowercase letters, digits, `-` and `_`), next to the
deployments it describes: no extra store, and a new runner sees it.

Records, locks and deployments are per project (`[tool.flowship] project`,
by default the repository's own name), so repositories sharing one Prefect
server never read each other's record. Deployment names are `<flow>/<scope>`
and so global on the server; a `project:<project>` tag says whose each one
is, and a deploy never writes over, or deletes, another project's.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from flowship.config import Config
from flowship.deploy.client import using
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_CLEAN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # never `--`, never `_`
PROJECT_MAX = 100  # leaves room in Prefect's 255 for the prefix, a 40-character scope and `_lock`
PROJECT_TAG = "project:"


def project_key(project: str) -> str:
    """`project` as a Prefect name, injective over project strings.

    A project that already is a clean name (lowercase letters, digits, single
    `-`) is kept, so existing records stay where they are; any other
    (`octo/flows`, `my_proj`, `My-Proj`) becomes its cleaned stem, `--` and 8
    hex of the sha256 of the exact string. A clean name never holds `--`, so
    the two forms never meet, and `my_proj` and `my-proj` never share a record.
    """
    if len(project) <= PROJECT_MAX and _CLEAN.match(project):
        return project
    digest = hashlib.sha256(project.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-")[: PROJECT_MAX - 10].rstrip("-")
    return f"{stem or 'p'}--{digest}"


def project_tag(project: str) -> str:
    """The tag that says which project made a deployment: the exact project string."""
    return f"{PROJECT_TAG}{project}"


def other_project(project: str, tags: list[str]) -> str | None:
    """The project a deployment's tags name, when it is not `project` (None when it is ours or untagged).

    Deployments flowship made before projects were tagged carry no such tag;
    they are adopted, and tagged, by the next deploy.
    """
    owners = [t[len(PROJECT_TAG):] for t in tags if t.startswith(PROJECT_TAG)]
    return None if not owners or project in owners else owners[0]


def variable_name(config: Config, scope: Scope) -> str:
    """`flowship_deployed_<project key>_<scope>`: neither part holds `_`, so it is unambiguous."""
    return f"flowship_deployed_{project_key(config.project)}_{scope.name}"


def read_last_deployed(config: Config, scope: Scope, *, client: SyncPrefectClient | None = None) -> str | None:
    """The commit last deployed in full to `scope`, or None if there is none."""
    with using(config, client) as c:
        variable = c.read_variable_by_name(variable_name(config, scope))
    value = variable.value if variable is not None else None
    return value if isinstance(value, str) and _SHA.match(value) else None


def record_deployed(config: Config, scope: Scope, sha: str, *, client: SyncPrefectClient | None = None) -> None:
    """Remember `sha` as the last commit deployed to `scope` (writes only when it changes)."""
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    name = variable_name(config, scope)
    with using(config, client) as c:
        variable = c.read_variable_by_name(name)
        if variable is None:
            c.create_variable(VariableCreate(name=name, value=sha, tags=scope.tags()))
        elif variable.value != sha:
            c.update_variable(VariableUpdate(name=name, value=sha))


def forget_deployed(config: Config, scope: Scope, *, client: SyncPrefectClient | None = None) -> bool:
    """Drop `scope`'s record (a closed preview); False when there was none."""
    from prefect.exceptions import ObjectNotFound

    with using(config, client) as c:
        try:
            c.delete_variable_by_name(variable_name(config, scope))
        except ObjectNotFound:
            return False
    return True


def rollbacks_name(config: Config, scope: Scope) -> str:
    """`flowship_rollbacks_<project key>_<scope>`: beside the record, named like it."""
    return f"flowship_rollbacks_{project_key(config.project)}_{scope.name}"


def record_rollback(config: Config, scope: Scope, flow_name: str, *, head: str, to: str, reason: str,
                    client: SyncPrefectClient | None = None) -> None:
    """Note that `flow_name` was put back from `head` on `to`, and why (the latest rollback of each flow)."""
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    name = rollbacks_name(config, scope)
    with using(config, client) as c:
        variable = c.read_variable_by_name(name)
        value = dict(variable.value) if variable is not None and isinstance(variable.value, dict) else {}
        value[flow_name] = {"from": head, "to": to, "reason": reason[:500]}
        if variable is None:
            c.create_variable(VariableCreate(name=name, value=value, tags=scope.tags()))
        else:
            c.update_variable(VariableUpdate(name=name, value=value))


def read_rollbacks(config: Config, scope: Scope, *, client: SyncPrefectClient | None = None) -> dict[str, dict[str, str]]:
    """The latest rollback of each flow of `scope`: flow name -> {"from", "to", "reason"}."""
    with using(config, client) as c:
        variable = c.read_variable_by_name(rollbacks_name(config, scope))
    value = variable.value if variable is not None else None
    return {str(k): dict(v) for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}

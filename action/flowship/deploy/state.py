"""The last commit deployed to each scope, kept on the Prefect server itself.

Planning compares from that commit, so a pipeline that failed or was skipped
is caught up by the next one. It lives in a Prefect Variable per scope
(names allow only lowercase letters, digits, `-` and `_`), next to the
deployments it describes: no extra store, and a new runner sees it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flowship.config import Config
from flowship.deploy.client import using
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def variable_name(config: Config, scope: Scope) -> str:
    """`flowship_deployed_<project>_<scope>`: project and scope hold no `_`, so it is unambiguous."""
    project = _NOT_NAME.sub("-", config.project.lower()).strip("-") or "flowship"
    return f"flowship_deployed_{project}_{scope.name}"


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

"""Reading and writing deployments on the Prefect server: few requests, paged.

Convergence reads every deployment it may touch in one filtered query (plus
one for flow names), so an unchanged rerun of N workflows costs two reads,
not N.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from flowship.deploy.desired import Desired, schedule_creates

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

PAGE = 200  # Prefect's default server limit
T = TypeVar("T")


def _paged(read: Callable[..., list[T]], **kwargs: Any) -> list[T]:
    out: list[T] = []
    while True:
        page = read(limit=PAGE, offset=len(out), **kwargs)
        out.extend(page)
        if len(page) < PAGE:
            return out


def flow_ids(client: SyncPrefectClient, names: Iterable[str]) -> dict[str, UUID]:
    """Existing flows by name (reads only: creating a flow is left to the first deployment)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    names = sorted(set(names))
    if not names:
        return {}
    flows = _paged(client.read_flows, flow_filter=FlowFilter(name=FlowFilterName(any_=names)))
    return {f.name: f.id for f in flows}


def deployments_of(
    client: SyncPrefectClient, flows: dict[str, UUID], name: str
) -> dict[str, DeploymentResponse]:
    """The deployments called `name` (a scope) of these flows, by flow name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterId

    if not flows:
        return {}
    by_id = {v: k for k, v in flows.items()}
    found = _paged(
        client.read_deployments,
        flow_filter=FlowFilter(id=FlowFilterId(any_=list(flows.values()))),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])),
    )
    return {by_id[d.flow_id]: d for d in found if d.flow_id in by_id and d.name == name}


def tagged(client: SyncPrefectClient, tags: list[str]) -> list[tuple[str, DeploymentResponse]]:
    """Deployments carrying every tag in `tags`, each with its flow's name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterId

    found = _paged(client.read_deployments, deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=tags)))
    if not found:
        return []
    ids = sorted({d.flow_id for d in found}, key=str)
    flows = _paged(client.read_flows, flow_filter=FlowFilter(id=FlowFilterId(any_=ids)))
    names = {f.id: f.name for f in flows}
    return [(names.get(d.flow_id, str(d.flow_id)), d) for d in found]


def upsert(client: SyncPrefectClient, flow_id: UUID, want: Desired) -> UUID:
    """Create or replace the deployment (Prefect's POST is an upsert on flow and name,
    keeping its id): one request whether it is new or changed."""
    from prefect.client.schemas.objects import VersionInfo

    f = want.fields
    return client.create_deployment(
        flow_id=flow_id,
        name=want.name,
        version=f["version"],
        version_info=VersionInfo.model_validate(f["version_info"]),
        description=f["description"],
        tags=list(f["tags"]),
        parameters=f["parameters"],
        parameter_openapi_schema=f["parameter_openapi_schema"],
        enforce_parameter_schema=f["enforce_parameter_schema"],
        schedules=schedule_creates(want),
        concurrency_limit=f["concurrency_limit"],
        work_pool_name=f["work_pool_name"],
        job_variables=f["job_variables"],
        pull_steps=f["pull_steps"],
        entrypoint=f["entrypoint"],
    )


def delete(client: SyncPrefectClient, deployment_id: UUID) -> bool:
    """Delete a deployment; False when it was already gone."""
    from prefect.exceptions import ObjectNotFound

    try:
        client.delete_deployment(deployment_id)
    except ObjectNotFound:
        return False
    return True

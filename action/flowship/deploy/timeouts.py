"""A workflow's `timeout_seconds`, applied by a Prefect automation per deployment.

Prefect has no setting for a flow's default timeout and a deployment has no
timeout field, so flowship keeps one automation per deployment that declares
one, named `flowship-timeout:<flow>/<scope>`: after a run of that deployment
enters Running (or Retrying), it expects an end of that attempt within the
timeout, and cancels the run when none comes (a proactive event trigger, the
same machinery as Prefect's "stuck run" automations; it works on a
self-hosted server). Prefect evaluates proactive triggers every few seconds
and refuses a window under 10 s, so a shorter timeout acts at 10 s.

Like the deployments, automations converge: one filtered read per deploy,
a write only where one differs; `enabled` is left as a person set it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowship.deploy.remote import _paged
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import Automation, AutomationCore

TAG = "flowship-timeout"
PREFIX = f"{TAG}:"
FLOOR_SECONDS = 10.0  # Prefect's minimum `within` for a proactive trigger
# An attempt starts with Running (Retrying for a retry) and ends with any of
# these; AwaitingRetry ends one attempt, so each attempt gets the timeout, as
# Prefect's own `@flow(timeout_seconds=...)` does. A paused run is not running.
STARTS = ("prefect.flow-run.Running", "prefect.flow-run.Retrying")
ENDS = tuple(f"prefect.flow-run.{state}" for state in (
    "Completed", "Failed", "Crashed", "Cancelled", "Cancelling", "AwaitingRetry", "Paused", "Suspended",
))


def automation_name(deployment: str) -> str:
    """`flowship-timeout:<flow>/<scope>` for the deployment `<flow>/<scope>`."""
    return PREFIX + deployment


def window(timeout_seconds: float) -> float:
    return max(float(timeout_seconds), FLOOR_SECONDS)


def tags(scope: Scope) -> list[str]:
    # No `pr:` tag: a preview's automation should not change with the event that deployed it.
    return sorted({"flowship", TAG, *(t for t in scope.tags() if not t.startswith("pr:"))})


def wanted(deployment: str, scope: Scope, deployment_id: UUID, timeout_seconds: float) -> AutomationCore:
    """The automation that cancels a run of `deployment` still running after `timeout_seconds`."""
    from datetime import timedelta

    from prefect.events.actions import CancelFlowRun
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return AutomationCore(
        name=automation_name(deployment),
        description=(f"flowship: cancels a run of {deployment} that runs longer than its workflow's "
                     f"timeout_seconds ({timeout_seconds:g} s)."),
        enabled=True,
        tags=tags(scope),
        # Prefect's update sends only the fields that were set, and a nested
        # model's `type` left at its default is not: without it the server reads
        # the action as "do nothing". So every `type` is given.
        trigger=EventTrigger(
            type="event",
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "deployment",
                           "prefect.resource.id": f"prefect.deployment.{deployment_id}"},
            after=set(STARTS),
            expect=set(ENDS),
            for_each={"prefect.resource.id"},  # one window per flow run
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=window(timeout_seconds)),
        ),
        actions=[CancelFlowRun(type="cancel-flow-run")],
    )


def read(client: SyncPrefectClient, deployments: Iterable[str], scope: Scope) -> dict[str, Automation]:
    """flowship's timeout automations of these deployments (`<flow>/<scope>`), by deployment: one filtered read."""
    from prefect.events.filters import AutomationFilter, AutomationFilterName, AutomationFilterTags

    names = sorted({automation_name(d) for d in deployments})
    if not names:
        return {}
    found = _paged(client.read_automations, automations=AutomationFilter(
        name=AutomationFilterName(any_=names), tags=AutomationFilterTags(all_=tags(scope)),
    ))
    return {a.name.removeprefix(PREFIX): a for a in found if a.name in names}


def of_preview(client: SyncPrefectClient, scope: Scope) -> list[Automation]:
    """Every timeout automation of the preview `scope` (whether or not its deployment still exists)."""
    from prefect.events.filters import AutomationFilter, AutomationFilterTags

    assert not scope.is_main
    found = _paged(client.read_automations, automations=AutomationFilter(tags=AutomationFilterTags(all_=tags(scope))))
    # Checked again, so a server that ignored the filter could never lose main's.
    return [a for a in found if a.name.startswith(PREFIX) and a.name.endswith(f"/{scope.name}")
            and "scope:main" not in a.tags and set(tags(scope)) <= set(a.tags)]


def converge(
    client: SyncPrefectClient, deployment: str, scope: Scope, deployment_id: UUID,
    timeout_seconds: float | None, current: Automation | None,
) -> str | None:
    """Create, update or delete `deployment`'s timeout automation; what changed, or None."""
    if not timeout_seconds:  # None or 0: no timeout, as in Prefect's `@flow(timeout_seconds=...)`
        if current is None:
            return None
        delete(client, current.id)
        return "timeout removed"
    want = wanted(deployment, scope, deployment_id, timeout_seconds)
    if current is None:
        client.create_automation(want)
        return "timeout added"
    if _key(want) == _key(current):
        return None
    want.enabled = current.enabled  # paused by a person: stays paused
    client.update_automation(current.id, want)
    return "timeout"


def seconds(automation: Automation | None) -> float | None:
    """The timeout an existing automation enforces (what the report shows as the old value)."""
    within = getattr(getattr(automation, "trigger", None), "within", None)
    return within.total_seconds() if within is not None else None


def delete(client: SyncPrefectClient, automation_id: UUID) -> None:
    client.delete_automation(automation_id)  # a 404 (already gone) is fine


def _key(automation: AutomationCore) -> dict[str, Any]:
    """What convergence compares: the fields flowship sets, sets sorted, `enabled` left out."""
    trigger = automation.trigger.model_dump(mode="json", exclude={"id"})
    for name in ("after", "expect", "for_each"):
        if isinstance(trigger.get(name), list):
            trigger[name] = sorted(trigger[name])
    return {
        "name": automation.name,
        "description": automation.description,
        "tags": sorted(automation.tags),
        "trigger": trigger,
        "actions": [a.model_dump(mode="json") for a in automation.actions],
    }

"""Starting flow runs of deployments (by hand, or after a deploy) and following them to their end."""

from __future__ import annotations

import difflib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowship.args import key_values
from flowship.config import Config
from flowship.deploy.remote import tagged
from flowship.errors import FlowshipError, InputError
from flowship.scope import MAIN, Scope, deployment_name

if TYPE_CHECKING:
    import httpx
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """`k=v` pairs; `v` is JSON when it parses (`3`, `true`, `[1, 2]`), else a string."""
    params: dict[str, Any] = {}
    for key, raw in key_values(pairs, "--param", "epochs=3").items():
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def scope_for(config: Config, name: str) -> Scope:
    """`main` (or the default branch's name) is production; any other name is that branch's preview."""
    if name in (MAIN, config.default_branch):
        return Scope.main(config.default_branch)
    return Scope.preview(name)


def run_url(config: Config, flow_run_id: UUID) -> str | None:
    """The Prefect UI page of a flow run, when the UI's address is known."""
    ui = config.env.prefect_ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def deployment_url(config: Config, deployment_id: UUID) -> str | None:
    """The Prefect UI page of a deployment, when the UI's address is known."""
    ui = config.env.prefect_ui_url
    return f"{ui.rstrip('/')}/deployments/deployment/{deployment_id}" if ui else None


def start(client: SyncPrefectClient, flow: str, scope: Scope, params: dict[str, Any]) -> FlowRun:
    """A new flow run of `<flow>/<scope>`, with `params` over the deployment's defaults."""
    import httpx

    from prefect.exceptions import ObjectNotFound

    name = deployment_name(flow, scope)
    try:
        deployment = client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise InputError(f"there is no deployment {name}; {_suggestion(client, flow, scope)}") from None
    try:
        return client.create_flow_run_from_deployment(deployment.id, parameters=params)
    except httpx.HTTPStatusError as exc:
        if (problem := _parameter_problem(exc, name)) is not None:
            raise InputError(problem) from None
        raise


def _suggestion(client: SyncPrefectClient, flow: str, scope: Scope) -> str:
    """What to type instead: the scope's closest flow name, else the names it has."""
    try:
        names = sorted({f for f, d in tagged(client, ["flowship", f"branch:{scope.slug}"]) if d.name == scope.name})
    except Exception:  # the hint is a courtesy: the missing deployment is the error
        names = []
    if close := difflib.get_close_matches(flow, names, n=1):
        return f"did you mean {close[0]!r}?"
    if names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        return f"{scope.name} has {shown}."
    return "deploy it first (flowship deploy), or check the flow name and --scope."


# Prefect answers a run whose parameters fail the deployment's schema with a
# 409 whose detail is the validation error (prefect.utilities.schema_tools):
# "Error creating flow run: Validation failed for field 'epochs'. Failure reason: ...".
_INVALID_FIELD = re.compile(r"Validation failed for field '(?P<field>[^']*)'\. Failure reason: (?P<why>.*)", re.S)
_INVALID = re.compile(r"Validation failed\. Failure reason: (?P<why>.*)", re.S)


def _parameter_problem(exc: httpx.HTTPStatusError, deployment: str) -> str | None:
    """The sentence for Prefect's 409 to a new run (bad parameters), or None for any other status."""
    if exc.response.status_code != 409:
        return None
    try:
        body = exc.response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str) or not detail.strip():
        return f"Prefect refused to start a run of {deployment} (409); check the --param values."
    if m := _INVALID_FIELD.search(detail):
        return f"--param {m['field']} is not valid for {deployment}: {_reason(m['why'])}."
    if m := _INVALID.search(detail):
        return f"the parameters are not valid for {deployment}: {_reason(m['why'])}."
    return f"Prefect refused to start a run of {deployment}: {_reason(detail)}."


def _reason(text: str) -> str:
    return " ".join(text.split()).rstrip(".")[:300]


@dataclass(frozen=True)
class Finished:
    run: Any  # the FlowRun in its final state
    result: Any = None
    has_result: bool = False


def follow(
    client: SyncPrefectClient,
    flow_run_id: UUID,
    *,
    on_state: Callable[[str, str | None], None],
    on_log: Callable[[str], None],
    poll: float = 1.0,
    until: float | None = None,
) -> Finished:
    """Poll the run until its state is final, reporting each new state and log line.

    With `until` (a `time.monotonic()` deadline) it stops there too, and
    returns the run as last read, not final.
    """
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    seen_state: str | None = None
    seen_logs = 0
    drain = 0  # polls left after the final state: the run's last logs arrive after it

    def read_logs() -> int:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                offset=seen_logs, sort=LogSort.TIMESTAMP_ASC)
        for log in logs:
            on_log(log.message)
        return len(logs)

    while True:
        flow_run = client.read_flow_run(flow_run_id)
        state = flow_run.state
        if state is not None and state.name != seen_state:
            seen_state = state.name
            on_state(state.name or str(state.type), state.message)
        seen_logs += read_logs()
        if state is not None and state.is_final():
            drain = drain or 3
            drain -= 1
            if drain == 0:
                return _finished(flow_run)
        elif until is not None and time.monotonic() >= until:
            return Finished(flow_run)
        time.sleep(poll)


def _finished(flow_run: Any) -> Finished:
    """The run and, when its result was persisted where this machine can read it, the result."""
    from prefect.exceptions import PrefectException

    state = flow_run.state
    if not state.is_completed():
        return Finished(flow_run)
    try:
        value = state.result(raise_on_failure=False)
    except (PrefectException, OSError, ValueError, TypeError, KeyError):
        return Finished(flow_run)  # not persisted, or stored where this machine cannot read
    return Finished(flow_run, value, True)


def run_deployment(config: Config, flow: str, scope_name: str, params: dict[str, Any], *, wait: bool,
                   say: Callable[[str], None]) -> Finished | Any:
    """`flowship run`: start a run and, with `wait`, follow it; returns the run (or how it finished)."""
    from flowship.deploy.client import open_client

    scope = scope_for(config, scope_name)
    with open_client(config) as client:
        flow_run = start(client, flow, scope, params)
        url = run_url(config, flow_run.id)
        say(f"started {flow_run.name} of {deployment_name(flow, scope)}" + (f": {url}" if url else ""))
        if not wait:
            return flow_run
        try:
            return follow(client, flow_run.id,
                          on_state=lambda name, msg: say(f"  state: {name}" + (f" ({msg})" if msg else "")),
                          on_log=lambda line: say(f"  | {line}"))
        except KeyboardInterrupt:
            raise FlowshipError(f"stopped following {flow_run.name}; it goes on running"
                                + (f": {url}" if url else ".")) from None


def start_runs(config: Config, deployments: Mapping[str, UUID], *, wait: bool, say: Callable[[str], None],
               poll: float = 5.0) -> dict[str, FlowRun]:
    """Start one run of each deployment (name -> id) and, with `wait`, poll them all to
    their final states (the job's own timeout bounds the wait); each run as last read."""
    from flowship.deploy.client import open_client

    with open_client(config) as client:
        started = {name: client.create_flow_run_from_deployment(id_) for name, id_ in deployments.items()}
        for name, flow_run in started.items():
            say(f"started {flow_run.name} of {name}")
        while wait and not all(f.state and f.state.is_final() for f in started.values()):
            time.sleep(poll)
            started = {name: client.read_flow_run(f.id) for name, f in started.items()}
    return started


def run_times(client: SyncPrefectClient, deployment: str, *, last: int = 10) -> list[float]:
    """Seconds each of the last `last` completed runs of `flow/scope` ran (newest first)."""
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    flow, _, name = deployment.partition("/")
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))),
        sort=FlowRunSort.END_TIME_DESC, limit=last,
    )
    seconds = []
    for r in runs:
        # Prefect's own run time (Running only); a run that never entered Running counts end - start.
        ran = r.total_run_time.total_seconds()
        if not ran and r.start_time and r.end_time:
            ran = (r.end_time - r.start_time).total_seconds()
        if ran > 0:
            seconds.append(ran)
    return seconds

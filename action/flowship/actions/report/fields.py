"""An update's changed fields as a person reads them: `(what, before, after)` rows.

Prefect's fields are read through what they mean to a flow's author: the
commit, the machine (from the description), retries (from the flow run's
environment), the task definition and capacity (from the job variables),
schedules by their names, each parameter and each parameter's default.
Values come back as plain text; the renderer escapes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flowship.deploy.desired import RETRIES_ENV, RETRY_DELAY_ENV, Change, schedule_name

Row = tuple[str, str, str]
NONE = "—"
_LONG = 80
# Job variables by the name a flow's author knows them by.
_VARIABLES = {
    f"env.{RETRIES_ENV}": "retries",
    f"env.{RETRY_DELAY_ENV}": "retry delay (s)",
    "task_definition_arn": "task definition",
    "capacity_provider_strategy": "capacity provider",
    "launch_type": "launch type",
}
_LABELS = {
    "version": "commit", "concurrency_limit": "concurrency limit", "work_pool_name": "work pool",
    "enforce_parameter_schema": "parameter checks", "pull_steps": "code", "entrypoint": "entrypoint",
    "timeout_seconds": "timeout",
}


def rows(change: Change) -> list[Row]:
    """What `change` changes, one row per thing a person would name."""
    reader = _READERS.get(change.field)
    if reader is not None:
        return list(reader(change.old, change.new))
    if change.field == "version_info":  # the commit row already says it
        return []
    return [(_LABELS.get(change.field, change.field), text(change.old), text(change.new))]


def text(value: Any) -> str:
    """A value in one short line."""
    if value is None or value == [] or value == {}:
        return NONE
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return shown if len(shown) <= _LONG else shown[: _LONG - 1] + "…"


def _version(old: Any, new: Any) -> Iterator[Row]:
    yield "commit", str(old or NONE)[:12], str(new or NONE)[:12]


def _description(old: Any, new: Any) -> Iterator[Row]:
    # flowship's description is `Key: value` lines (deploy.desired.description):
    # a changed line is a row named by its key, so a machine change reads as one.
    before, after = _keyed(old or ""), _keyed(new or "")
    for key in dict.fromkeys([*before, *after]):
        if before.get(key) != after.get(key):
            yield key.lower() if key else "description", text(before.get(key)), text(after.get(key))


def _keyed(description: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in description.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            out[""] = (out.get("", "") + " " + line).strip()
        else:
            out[key.strip()] = value.strip()
    return out


def _tags(old: Any, new: Any) -> Iterator[Row]:
    gone = sorted(set(old or ()) - set(new or ()))
    added = sorted(set(new or ()) - set(old or ()))
    yield "tags", text(", ".join(gone)), text(", ".join(added))


def _parameters(old: Any, new: Any) -> Iterator[Row]:
    before, after = dict(old or {}), dict(new or {})
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            yield f"parameter {key}", text(before.get(key)), text(after.get(key))


def _schema(old: Any, new: Any) -> Iterator[Row]:
    before = dict((old or {}).get("properties") or {})
    after = dict((new or {}).get("properties") or {})
    found = False
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        found = True
        if b is None or a is None:
            yield f"parameter {key}", "absent" if b is None else _type(b), "absent" if a is None else _type(a)
        elif b.get("default") != a.get("default"):
            yield f"default of {key}", text(b.get("default")), text(a.get("default"))
        else:
            yield f"type of {key}", _type(b), _type(a)
    if not found:
        yield "parameter schema", "as before", "changed (required or definitions)"


def _type(prop: dict[str, Any]) -> str:
    kind = prop.get("type") or prop.get("$ref", "").rsplit("/", 1)[-1] or "any"
    return f"{kind} = {text(prop['default'])}" if "default" in prop else str(kind)


def _schedules(old: Any, new: Any) -> Iterator[Row]:
    def names(schedules: Any) -> str:
        shown = [schedule_name(s) + ("" if s.get("active", True) else " (paused)") for s in schedules or ()]
        return "; ".join(shown) or "none"

    yield "schedules", names(old), names(new)


def _job_variables(old: Any, new: Any) -> Iterator[Row]:
    before, after = _flat(old or {}), _flat(new or {})
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            yield _VARIABLES.get(key, key), _variable(key, before.get(key)), _variable(key, after.get(key))


def _variable(key: str, value: Any) -> str:
    if key == "task_definition_arn" and isinstance(value, str):
        return value.rsplit("task-definition/", 1)[-1]  # family:revision
    if key == "capacity_provider_strategy" and isinstance(value, list):
        return ", ".join(str(s.get("capacityProvider")) for s in value if isinstance(s, dict)) or NONE
    return text(value)


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out |= _flat(item, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = item
    return out


def _pull_steps(old: Any, new: Any) -> Iterator[Row]:
    def directory(steps: Any) -> str:
        for step in steps or ():
            for value in step.values() if isinstance(step, dict) else ():
                if isinstance(value, dict) and "directory" in value:
                    return str(value["directory"])
        return text(steps)

    yield "code", directory(old), directory(new)


def _timeout(old: Any, new: Any) -> Iterator[Row]:
    def seconds(value: Any) -> str:
        return f"{float(value):g} s" if value else "none"

    yield "timeout", seconds(old), seconds(new)


_READERS = {
    "version": _version, "description": _description, "tags": _tags, "parameters": _parameters,
    "parameter_openapi_schema": _schema, "schedules": _schedules, "job_variables": _job_variables,
    "pull_steps": _pull_steps, "timeout_seconds": _timeout,
}

"""What merging a pull request will do to production, read-only.

The preview's deployments are what the branch declares, deployed; main's are
what runs in production now. Comparing the fields that mean the same in both
scopes (everything but the commit, tags, pull steps and the infrastructure a
scope gets of its own) says which production deployments the merge will
change and how, which it will create, and which it will delete. Nothing here
writes to Prefect, and main is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flowship.config import Config
from flowship.deploy import remote
from flowship.deploy.client import using
from flowship.deploy.desired import RETRIES_ENV, RETRY_DELAY_ENV, Change, current_fields
from flowship.plan import Plan
from flowship.scope import MAIN

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

Effect = Literal["create", "update", "delete", "unchanged"]
# Description lines that differ between any preview and main by design.
_SCOPED_LINES = ("Scope:", "Branch:", "Pull request:", "Commit:")


@dataclass(frozen=True)
class MergeEffect:
    flow: str
    effect: Effect
    changes: tuple[Change, ...] = ()


@dataclass
class MergePreview:
    effects: list[MergeEffect] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # planned flows whose preview is not deployed

    def count(self, effect: Effect) -> int:
        return sum(e.effect == effect for e in self.effects)


def merge_preview(config: Config, plan: Plan, *, client: SyncPrefectClient | None = None) -> MergePreview:
    """The effect on `main` of merging the preview `plan` deployed (read-only)."""
    assert not plan.scope.is_main, "a merge preview compares a preview with main"
    out = MergePreview()
    names = [w.name for w in plan.workflows] + [d.name for d in plan.delete]
    if not names:
        return out
    with using(config, client) as opened:
        flows = remote.flow_ids(opened, names)
        previews = remote.deployments_of(opened, flows, plan.scope.name)
        mains = remote.deployments_of(opened, flows, MAIN)
    for w in plan.workflows:
        preview, main = previews.get(w.name), mains.get(w.name)
        if preview is None:
            out.unknown.append(w.name)
        elif main is None:
            out.effects.append(MergeEffect(w.name, "create"))
        else:
            changes = compare(current_fields(main), current_fields(preview))
            out.effects.append(MergeEffect(w.name, "update" if changes else "unchanged", tuple(changes)))
    out.effects += [MergeEffect(d.name, "delete") for d in plan.delete if d.name in mains]
    return out


def compare(main: dict[str, Any], preview: dict[str, Any]) -> list[Change]:
    """The fields production would change to, `old` from main and `new` from the preview."""
    have, want = comparable(main), comparable(preview)
    return [Change(k, have[k], want[k]) for k in have if have[k] != want[k]]


def comparable(fields: dict[str, Any]) -> dict[str, Any]:
    """A deployment's fields without what each scope gets of its own."""
    env = dict((fields.get("job_variables") or {}).get("env") or {})
    retry = {k: env[k] for k in (RETRIES_ENV, RETRY_DELAY_ENV) if k in env}
    description = "\n\n".join(p for p in (fields.get("description") or "").split("\n\n")
                              if not p.startswith(_SCOPED_LINES))
    return {
        "description": description,
        "parameters": fields.get("parameters"),
        "parameter_openapi_schema": fields.get("parameter_openapi_schema"),
        # A preview's schedules are paused by design: compare what they are, not whether they run.
        "schedules": [{k: v for k, v in s.items() if k != "active"} | {"active": True}
                      for s in fields.get("schedules") or ()],
        "concurrency_limit": fields.get("concurrency_limit"),
        "job_variables": {"env": retry} if retry else {},
        "entrypoint": fields.get("entrypoint"),
    }

"""The GitHub event a run was started by, read into one typed `Event`.

Inputs are the variables Actions sets (`GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`,
`GITHUB_SHA`, `GITHUB_REF`, ...) and the webhook payload at
`GITHUB_EVENT_PATH`. What flowship does with each event:

- push to the default branch: deploy to `main`; to another branch: deploy a
  preview of it. A tag push, or a push that deletes a ref: nothing.
- pull_request opened/synchronize/reopened/ready_for_review: a preview of the
  head branch (a fork's head is named `owner:branch`, its `head.label`, so it
  never shares a preview with a branch of the same name here); closed: cleanup.
  The head commit is `pull_request.head.sha`, not `GITHUB_SHA` (the merge commit).
  The label `flowship:smoke` on the pull request asks for smoke runs of its
  preview; adding it (`labeled`) deploys the preview again from the merge base,
  so everything the pull request changes is smoke-run at once.
- delete of a branch: cleanup of its previews (never of the default branch).
- workflow_dispatch: the ref it was run on, everything or the flows named in
  its inputs (`smoke: true` smoke-runs a preview).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flowship.changes.base import Candidate
from flowship.config import yes_no
from flowship.errors import InputError
from flowship.git import ZERO_SHA
from flowship.scope import Scope

_SHA = re.compile(r"^[0-9a-f]{40}$")
_DEPLOY_ACTIONS = {"opened", "synchronize", "reopened", "ready_for_review"}
# The label that asks for smoke runs of a pull request's preview (never on a schedule: previews' are paused).
SMOKE_LABEL = "flowship:smoke"

Action = Literal["deploy", "cleanup", "nothing"]


@dataclass(frozen=True)
class DispatchInputs:
    flows: tuple[str, ...] = ()
    force_rebuild: bool = False
    run: bool = False
    wait: bool = False
    smoke: bool = False  # smoke-run a preview's workflows (main's follow the action's `verify`)
    ref: str | None = None  # a commit or ref to deploy instead of the dispatched one (rollback)
    # The dispatched branch's head (GITHUB_SHA): a rollback must be one of its ancestors.
    branch_head: str | None = None


@dataclass(frozen=True)
class Event:
    name: str
    action: Action
    reason: str  # why this action, in a sentence
    scope: Scope | None = None
    head: str | None = None  # the commit to deploy
    bases: tuple[Candidate, ...] = ()  # in order of preference, after the last deployed commit
    everything: bool = False  # plan every workflow (workflow_dispatch without flows)
    fork: bool = False
    pr: int | None = None
    pr_title: str | None = None
    repository: str | None = None  # owner/name
    repository_url: str | None = None
    inputs: DispatchInputs = DispatchInputs()
    smoke: bool = False  # a preview asked for smoke runs (the label, or the dispatch input)
    replan: bool = False  # plan from the event's own base, not the scope's record (the label was just added)


def read_event(env: Mapping[str, str], *, default_branch: str | None = None) -> Event:
    """The event in `env`; `default_branch` overrides the payload's repository.default_branch."""
    name = env.get("GITHUB_EVENT_NAME", "")
    if not name:
        raise InputError("GITHUB_EVENT_NAME is not set; `flowship ci` reads the event of a GitHub Actions run.")
    payload = _payload(env)
    repo: dict[str, Any] = payload["repository"] if isinstance(payload.get("repository"), dict) else {}
    default = default_branch or repo.get("default_branch") or "main"
    common: dict[str, Any] = {
        "name": name,
        "repository": repo.get("full_name") or env.get("GITHUB_REPOSITORY") or None,
        "repository_url": repo.get("html_url") or None,
    }
    if name == "push":
        return _push(env, payload, default, common)
    if name in ("pull_request", "pull_request_target"):
        return _pull_request(payload, default, common)
    if name == "workflow_dispatch":
        return _dispatch(env, payload, default, common)
    if name == "delete":
        return _delete(payload, default, common)
    return Event(**common, action="nothing", reason=f"flowship does not act on {name} events.")


def _payload(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        raise InputError("GITHUB_EVENT_PATH is not set; it names the event's JSON payload in GitHub Actions.")
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except OSError as exc:
        raise InputError(f"cannot read the event payload {path}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"the event payload {path} is not UTF-8 (byte {exc.start}); GitHub writes it as UTF-8 JSON.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the event payload {path} is not JSON ({exc.msg} at line {exc.lineno}).") from None
    if not isinstance(payload, dict):
        raise InputError(f"the event payload {path} is not a JSON object.")
    return payload


def _require(data: Any, *keys: str) -> Any:
    where = "payload"
    for key in keys:
        if not isinstance(data, dict) or key not in data or data[key] is None:
            raise InputError(f"the event payload has no {where}.{key}; is GITHUB_EVENT_PATH the right file?")
        data = data[key]
        where += f".{key}"
    return data


def _number(value: Any) -> int:
    # GitHub sends a positive integer; anything else (a string, a bool, 1.5) is not its payload.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
        raise InputError(f"the event payload's pull request number {value!r:.40} is not a positive whole number.")
    return value


def _branch_of(ref: str) -> str | None:
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def _push(env: Mapping[str, str], payload: dict[str, Any], default: str, common: dict[str, Any]) -> Event:
    ref = str(_require(payload, "ref"))
    branch = _branch_of(ref)
    if branch is None:
        return Event(**common, action="nothing", reason=f"{ref} is not a branch (a tag push deploys nothing).")
    if payload.get("deleted") or payload.get("after") == ZERO_SHA:
        return Event(**common, action="nothing", reason=f"the push deleted {branch}; nothing to deploy.")
    head = payload.get("after") or env.get("GITHUB_SHA")
    if not head or not _SHA.match(head):
        raise InputError("the push event names no head commit (payload.after or GITHUB_SHA).")
    before = payload.get("before")
    bases: tuple[Candidate, ...] = ()
    if isinstance(before, str) and _SHA.match(before) and before != ZERO_SHA:
        bases = (Candidate("commit", before, "the push's previous head"),)
    scope = Scope.for_branch(branch, default)
    kind = "production" if scope.is_main else "a preview"
    return Event(**common, action="deploy", reason=f"a push to {branch} deploys {kind}.",
                 scope=scope, head=head, bases=bases)


def _pull_request(payload: dict[str, Any], default: str, common: dict[str, Any]) -> Event:
    action = str(_require(payload, "action"))
    pr = _require(payload, "pull_request")
    number = _number(payload["number"] if payload.get("number") is not None else _require(pr, "number"))
    head_repo = (_require(pr, "head").get("repo") or {}).get("full_name")
    fork = head_repo != common["repository"]  # a deleted fork has no head.repo at all
    # A fork's branch is named by its label ("owner:branch"), so it never shares
    # a preview with a branch of the same name in this repository.
    branch = str(_require(pr, "head", "label") if fork else _require(pr, "head", "ref"))
    scope = Scope.preview(branch, number)
    info = {**common, "scope": scope, "fork": fork, "pr": number, "pr_title": pr.get("title")}
    if action == "closed":
        return Event(**info, action="cleanup", reason=f"pull request #{number} was closed; its preview is removed.")
    labels = {label.get("name") for label in pr.get("labels") or () if isinstance(label, dict)}
    added = payload.get("label")  # the label a `labeled` event added
    replan = action == "labeled" and isinstance(added, dict) and added.get("name") == SMOKE_LABEL
    if action not in _DEPLOY_ACTIONS and not replan:
        return Event(**info, action="nothing", reason=f"a pull request that was {action} deploys nothing.")
    base_sha = str(_require(pr, "base", "sha"))
    base_ref = str(_require(pr, "base", "ref"))
    why = (f"the {SMOKE_LABEL} label was added to pull request #{number}: its preview of {branch} is "
           "deployed and smoke-run" if replan else f"pull request #{number} deploys a preview of {branch}")
    return Event(
        **info, action="deploy", reason=why + ".", head=str(_require(pr, "head", "sha")),
        bases=(Candidate("merge-base", base_sha, f"the merge base with {base_ref}"),),
        smoke=not fork and (replan or SMOKE_LABEL in labels), replan=replan,
    )


def _delete(payload: dict[str, Any], default: str, common: dict[str, Any]) -> Event:
    ref_type, ref = payload.get("ref_type"), str(_require(payload, "ref"))
    branch = _branch_of(ref) or ref
    if ref_type != "branch":
        return Event(**common, action="nothing", reason=f"a deleted {ref_type or 'ref'} has no deployments.")
    if branch == default:
        return Event(**common, action="nothing", reason="the default branch's deployments are never cleaned up.")
    return Event(**common, action="cleanup", reason=f"branch {branch} was deleted; its previews are removed.",
                 scope=Scope.preview(branch))


def _flag(inputs: Mapping[str, Any], key: str) -> bool:
    value = inputs.get(key, False)
    flag = yes_no(value)
    if flag is None:
        raise InputError(f"the workflow_dispatch input {key}={value!r} must be true or false.")
    return flag


def _dispatch(env: Mapping[str, str], payload: dict[str, Any], default: str, common: dict[str, Any]) -> Event:
    ref = str(payload.get("ref") or env.get("GITHUB_REF") or "")
    branch = _branch_of(ref) or env.get("GITHUB_REF_NAME") or None
    if branch is None or ref.startswith("refs/tags/"):
        return Event(**common, action="nothing", reason=f"workflow_dispatch ran on {ref or 'no ref'}, not a branch.")
    raw = payload.get("inputs") or {}
    if not isinstance(raw, dict):
        raise InputError("the workflow_dispatch payload's inputs are not an object.")
    flows = tuple(f for f in re.split(r"[\s,]+", str(raw.get("flows") or "")) if f)
    rollback = str(raw.get("sha") or raw.get("ref") or "").strip() or None
    tip = env.get("GITHUB_SHA") or None
    inputs = DispatchInputs(
        flows=flows, force_rebuild=_flag(raw, "force_rebuild"), run=_flag(raw, "run"),
        wait=_flag(raw, "wait"), smoke=_flag(raw, "smoke"), ref=rollback, branch_head=tip,
    )
    head = rollback or tip or ""
    if not head:
        raise InputError("the workflow_dispatch event names no commit (GITHUB_SHA is not set).")
    scope = Scope.for_branch(branch, default)
    what = ", ".join(flows) if flows else "every workflow"
    return Event(**common, action="deploy", reason=f"a manual run deploys {what} on {branch}.",
                 scope=scope, head=head, everything=not flows, inputs=inputs, smoke=inputs.smoke)

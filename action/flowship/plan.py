"""The Plan: what a commit range asks to deploy, delete and build, and why.

Its JSON (schema 1) is a contract (docs/design.md): `plan --json` writes it and
`build`/`deploy --plan FILE` read it. Fields beyond the contract's are
additive (`declaration`, `line`, `deps_tag`, `declaration_problems`) so readers
of schema 1 keep working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowship.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, InputError, Problem
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow

SCHEMA = 1


@dataclass(frozen=True)
class PlannedWorkflow:
    name: str
    file: str
    entrypoint: str
    deployment: str
    image: str  # the image family
    workflow: Workflow
    reasons: tuple[str, ...] = ()
    line: int = 1

    @property
    def machine(self) -> AwsEcsMachine:
        return self.workflow.machine

    def to_json(self) -> dict[str, Any]:
        entry = self.workflow.entry_json()
        return {
            "name": self.name,
            "file": self.file,
            "entrypoint": self.entrypoint,
            "deployment": self.deployment,
            "image": self.image,
            "machine": entry["machine"],
            "reasons": list(self.reasons),
            "line": self.line,
            "declaration": entry["declaration"],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedWorkflow:
        workflow = Workflow.from_json({"machine": data["machine"], **data.get("declaration", {})})
        return cls(
            name=data["name"],
            file=data["file"],
            entrypoint=data["entrypoint"],
            deployment=data["deployment"],
            image=data["image"],
            workflow=workflow,
            reasons=tuple(data.get("reasons", ())),
            line=data.get("line", 1),
        )


@dataclass(frozen=True)
class Deletion:
    name: str
    deployment: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "deployment": self.deployment}


@dataclass(frozen=True)
class PlannedImage:
    name: str  # the family
    tag: str  # the code image's tag, `<family>-<sha>`
    rebuild: bool  # the deps image's inputs changed (or --force-rebuild)
    reasons: tuple[str, ...] = ()
    deps_tag: str | None = None  # `<family>-deps-<hash>`

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "rebuild": self.rebuild,
            "reasons": list(self.reasons),
            "deps_tag": self.deps_tag,
        }


@dataclass(frozen=True)
class Plan:
    base: str | None
    head: str
    scope: Scope
    workflows: tuple[PlannedWorkflow, ...] = ()
    delete: tuple[Deletion, ...] = ()
    images: tuple[PlannedImage, ...] = ()
    # Problems travel as data from discovery to the exit code and the report's
    # annotations; notes are sentences about the analysis, never bad input.
    problems: tuple[Problem, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def messages(self) -> tuple[str, ...]:
        """Every problem (`file:line: message`) and note, as the report lists them."""
        return (*map(str, self.problems), *self.notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "base": self.base,
            "head": self.head,
            "scope": self.scope.to_json(),
            "workflows": [w.to_json() for w in self.workflows],
            "delete": [d.to_json() for d in self.delete],
            "images": [i.to_json() for i in self.images],
            "problems": list(self.messages),
            "declaration_problems": [{"file": p.file, "line": p.line, "message": p.message} for p in self.problems],
        }

    def exit_code(self, failed: bool = False) -> int:
        """What a command that made or deployed this plan exits with: 1 when the work
        failed, else 2 while a declaration needs fixing (the good flows still
        went; a bad declaration is bad input, as `plan` says), else 0."""
        if failed:
            return EXIT_FAILURE
        return EXIT_USAGE if self.problems else EXIT_OK

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise InputError(f"this is not a flowship plan of schema {SCHEMA}; write one with `flowship plan --json`.")
        try:
            problems = tuple(
                Problem(str(p["file"]), int(p["line"]), str(p["message"])) for p in data.get("declaration_problems", ())
            )
            return cls(
                base=data["base"],
                head=data["head"],
                scope=Scope.from_json(data["scope"]),
                workflows=tuple(PlannedWorkflow.from_json(w) for w in data["workflows"]),
                delete=tuple(Deletion(d["name"], d["deployment"]) for d in data["delete"]),
                images=tuple(
                    PlannedImage(i["name"], i["tag"], bool(i["rebuild"]), tuple(i.get("reasons", ())), i.get("deps_tag"))
                    for i in data["images"]
                ),
                problems=problems,
                notes=tuple(m for m in data.get("problems", ()) if m not in set(map(str, problems))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"the plan is malformed ({type(exc).__name__}: {exc}); write it again with `flowship plan --json`.") from None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the plan {path}: {exc.strerror}.") from None
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}).") from None

"""Static discovery of workflows under the flows directory (no flow code is imported)."""

from __future__ import annotations

from dataclasses import dataclass

from flowship.workflow import Workflow


@dataclass(frozen=True)
class WorkflowRecord:
    """One discovered workflow: a module's `Workflow(...)` paired with its `@flow`."""

    name: str  # the Prefect flow name
    file: str  # repo-relative POSIX path
    line: int  # line of the Workflow(...) declaration
    function: str  # the @flow function's name
    workflow: Workflow

    @property
    def entrypoint(self) -> str:
        return f"{self.file}:{self.function}"

    def to_json(self) -> dict:
        declaration = self.workflow.to_json()
        machine = declaration.pop("machine")
        return {
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "entrypoint": self.entrypoint,
            "image": machine["image"],
            "machine": machine,
            "declaration": declaration,
        }

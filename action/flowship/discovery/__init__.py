"""Discovery: the workflows a commit (or the working tree) declares, read statically.

`core` pairs each module's `Workflow(...)` with its `@flow`; `declarations`
reads one module with `ast`; `imports` scans a module's imports; `cache`
keeps both by git blob sha; `limits` bounds what one file may cost.
Nothing here imports Prefect, boto3 or docker (an import-linter contract).
"""

from flowship.discovery.core import (
    CommitTree,
    Discovery,
    Tree,
    WorkflowRecord,
    WorkTree,
    analysed,
    combine,
    discover,
    discover_partly,
    discover_tree,
    pair,
    python_files,
    with_unreadable,
)

__all__ = [
    "CommitTree", "Discovery", "Tree", "WorkTree", "WorkflowRecord", "analysed", "combine", "discover",
    "discover_partly", "discover_tree", "pair", "python_files", "with_unreadable",
]

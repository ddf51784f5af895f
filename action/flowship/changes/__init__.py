"""Change analysis: from a commit range to the Plan.

`base` chooses what head is compared with; `core` makes the plan (what is
affected, what is deleted, which images); `affected` maps changed paths to
workflows, through `reverse` (a word index, for ordinary commits) or `graph`
(the whole import graph, cached). Nothing here imports Prefect, boto3 or
docker (an import-linter contract), so planning runs in a bare Python.
"""

from flowship.changes.base import BaseSource, Candidate, choose_base, resolve_base
from flowship.changes.core import make_plan

__all__ = ["BaseSource", "Candidate", "choose_base", "make_plan", "resolve_base"]

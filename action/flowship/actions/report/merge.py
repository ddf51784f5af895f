"""The comment's "What merging will do to production" section (deploy/merge.py reads it)."""

from __future__ import annotations

from flowship.actions.report import fields
from flowship.deploy.merge import MergePreview
from flowship.markdown import escape
from flowship.redact import redact

_SAY = {"create": "🆕 will be created", "update": "🔄 will be updated", "delete": "🗑️ will be deleted",
        "unchanged": "✅ stays as it is"}


def _md(text: object) -> str:
    return escape(redact(str(text)))


def merge_section(merge: MergePreview | None) -> list[str]:
    if merge is None or not (merge.effects or merge.unknown):
        return []
    counts = f"{merge.count('create')} to create, {merge.count('update')} to update, {merge.count('delete')} to delete"
    out = ["### What merging will do to production", "",
           f"**{counts}** in `main` (read from Prefect now; nothing was written to main).", "",
           "| Flow | On merge |", "| --- | --- |"]
    for e in sorted(merge.effects, key=lambda e: (list(_SAY).index(e.effect), e.flow)):
        labels = dict.fromkeys(row[0] for c in e.changes for row in fields.rows(c))
        out.append(f"| {_md(e.flow)} | {_SAY[e.effect]}" + (f": {_md(', '.join(labels))}" if labels else "") + " |")
    out += [f"| {_md(name)} | not compared: its preview did not deploy |" for name in sorted(merge.unknown)]
    out.append("")
    updated = [e for e in merge.effects if e.effect == "update"]
    if updated:
        # Only fixed text inside HTML; the escaped values follow the blank line.
        out += ["<details>", f"<summary>What the merge changes in production ({len(updated)})</summary>", ""]
        for e in sorted(updated, key=lambda e: e.flow):
            out += [f"**{_md(e.flow)}/main**", "", "| Field | Now in main | After the merge |", "| --- | --- | --- |"]
            out += [f"| {_md(what)} | {_md(old)} | {_md(new)} |"
                    for c in e.changes for what, old, new in fields.rows(c)]
            out.append("")
        out += ["</details>", ""]
    return out

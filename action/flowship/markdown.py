"""Markdown for text someone else chose: the one escaping rule of every report.

Pure text in, text out, so both the report (which redacts first) and the
redactor (which must know a secret's escaped spelling) use the same rule.
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"([!\"#$%'()*+,\-./:;=?\[\\\]^_`{|}~])")  # ASCII punctuation but & < >
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Inline Markdown: ASCII punctuation backslash-escaped (CommonMark makes
    each a literal), `&<>` as entities, line breaks flattened to spaces, and
    `@` broken so it mentions no one."""
    flat = " ".join(text.splitlines())
    escaped = _PUNCT.sub(r"\\\1", flat)
    # HTML's own characters as entities: no tag, in any renderer.
    escaped = re.sub(r"[&<>]", lambda m: _ENTITIES[m[0]], escaped)
    return escaped.replace("@", "@\u200b")


def code_block(text: str, lang: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"

"""Markdown rendered as GitHub does (CommonMark, tables, raw HTML) and read back as blocks."""

from __future__ import annotations

from dataclasses import dataclass, field

from markdown_it import MarkdownIt


@dataclass
class Doc:
    """A rendered Markdown document as blocks: headings, paragraphs (nested: in a list or quote), fences, tables, html."""

    blocks: list[tuple[str, object]] = field(default_factory=list)

    def of(self, kind: str) -> list:
        return [b for k, b in self.blocks if k == kind]


def render(markdown: str) -> Doc:
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(markdown)
    doc, i = Doc(), 0
    while i < len(tokens):
        t = tokens[i]
        if t.type == "heading_open":
            doc.blocks.append((t.tag, _text(tokens[i + 1])))
        elif t.type == "paragraph_open":
            doc.blocks.append(("p" if t.level == 0 else "nested", _text(tokens[i + 1])))
        elif t.type == "fence":
            doc.blocks.append(("fence", t.content))
        elif t.type == "html_block":
            doc.blocks.append(("html", t.content.strip()))
        elif t.type == "table_open":
            rows, row = [], None
            while tokens[i].type != "table_close":
                if tokens[i].type == "tr_open":
                    row = []
                elif tokens[i].type == "inline" and row is not None:
                    row.append((_text(tokens[i]), _links(tokens[i])))
                elif tokens[i].type == "tr_close":
                    rows.append(row)
                i += 1
            doc.blocks.append(("table", rows))
        i += 1
    return doc


def _text(inline) -> str:
    return "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline"))


def _links(inline) -> dict[str, str]:
    children = inline.children or []
    return {children[k + 1].content: c.attrs["href"] for k, c in enumerate(children) if c.type == "link_open"}

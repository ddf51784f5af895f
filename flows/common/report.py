"""What the flows publish as Prefect artifacts: markdown tables and a loss plot.

The plot is a PNG embedded in markdown as a data URL, so the artifact is
self-contained (Prefect's image artifact only links to a URL somewhere else).
matplotlib is imported inside the function that draws, with the Agg backend,
so importing this module costs nothing on a machine without a display.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence


def markdown_table(rows: Sequence[Mapping[str, object]]) -> str:
    if not rows:
        return "_no rows_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def loss_plot_png(series: Mapping[str, Sequence[float]], title: str = "loss") -> bytes:
    """A PNG of one line per named series over epochs (log scale: losses span decades)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # Figure() rather than pyplot: no global state, safe from worker threads.
    figure = Figure(figsize=(6, 3.5), dpi=90)
    axes = figure.add_subplot()
    for name, values in series.items():
        if values:
            axes.plot(range(1, len(values) + 1), values, label=name)
    axes.set_xlabel("epoch")
    axes.set_ylabel("MSE")
    axes.set_yscale("log")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"

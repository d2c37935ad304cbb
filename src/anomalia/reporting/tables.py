"""Tables as data, rendered to Markdown (``summary.md``, the console) or HTML (``report.html``).

A :class:`Table` is built once from results and rendered by each writer, so the Markdown and
the HTML always show the same cells and nothing has to parse one format back into another.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anomalia.methods import METHODS


def format_cell(value: Any) -> str:
    """A cell as text: floats with 4 decimals, everything else with ``str``."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Table:
    """A table with an optional heading and notes shown above it.

    Attributes:
        headers: column names.
        rows: one sequence of cells per row, as long as ``headers``; cells are formatted by
            :func:`format_cell` (floats with 4 decimals).
        title: heading above the table (Markdown ``###``, HTML ``<h3>``), if any.
        notes: paragraphs between the heading and the table.
    """

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str | None = None
    notes: Sequence[str] = ()

    def to_markdown(self) -> str:
        """Heading, notes and pipe table, separated by blank lines, without a final newline."""
        lines = [
            "| " + " | ".join(self.headers) + " |",
            "| " + " | ".join("---" for _ in self.headers) + " |",
        ]
        lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in self.rows]
        blocks = [f"### {self.title}"] if self.title is not None else []
        return "\n\n".join([*blocks, *self.notes, "\n".join(lines)])

    def to_html(self) -> str:
        """Heading, notes and ``<table>``, every text escaped."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(format_cell(v))}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        parts = [f"<h3>{html.escape(self.title)}</h3>"] if self.title is not None else []
        parts += [f"<p>{html.escape(note)}</p>" for note in self.notes]
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return "\n".join(parts)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are printed with 4 decimals."""
    return Table(headers, rows).to_markdown()


def score_name(method: str | None) -> str:
    """What ``method``'s score measures ("reconstruction loss", "distance to c", ...)."""
    record = METHODS.get(method or "")
    return record.score_name if record is not None else "score"


def headline_metrics_table(metrics: dict[str, Any]) -> Table:
    """The headline metrics of one run (``metrics.json``) as a two-column table."""
    score = score_name(metrics.get("method"))
    keys = [
        ("auroc", "AUROC"),
        ("auprc", "AUPRC"),
        ("mean_score_normal", f"mean test {score}, normals"),
        ("mean_score_anomaly", f"mean test {score}, anomalies"),
        ("threshold", "threshold (score >= threshold = anomaly)"),
        ("threshold_rule", "threshold rule"),
        ("precision", "precision at threshold"),
        ("recall", "recall at threshold"),
        ("f1", "F1 at threshold"),
    ]
    return Table(["metric", "value"], [(label, metrics[k]) for k, label in keys if k in metrics])


def metrics_table(metrics: dict[str, Any]) -> str:
    """The headline metrics of one run as a two-column Markdown table."""
    return headline_metrics_table(metrics).to_markdown()

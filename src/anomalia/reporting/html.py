"""Self-contained HTML pages (images inlined as data URIs, no network, no scripts from outside)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from anomalia.errors import DataError
from anomalia.reporting.summary import SUMMARY_NOTE, read_result_rows, summary_tables
from anomalia.reporting.tables import Table, headline_metrics_table
from anomalia.rundir import RunDir
from anomalia.utils import atomic_open

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1.5rem;
       max-width: 72rem; color: #222; }
h1, h2, h3 { font-weight: 600; } table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f3f3f3; }
img { max-width: 100%; margin: 0.5rem 0 1.5rem; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; } .note { color: #555; }
"""


def image_tag(path: Path, alt: str) -> str:
    """An <img> with the PNG inlined."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: str) -> str:
    """A complete HTML document: no scripts, no external resources."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _plots(files: list[Path]) -> str:
    return "\n".join(
        f"<h3>{html.escape(p.stem.replace('_', ' '))}</h3>\n{image_tag(p, p.stem)}" for p in files
    )


def run_report(run: RunDir) -> str:
    """One training run: headline metrics, plots, configuration."""
    metrics = run.read_metrics()
    info = run.read_info()
    per_class = metrics.get("mean_score_by_class", {})
    names = info.get("class_names", [])
    body = [
        f'<p class="note">{html.escape(str(run))}; '
        f"status {html.escape(info.get('status', '?'))}; "
        f"threshold: {html.escape(metrics.get('threshold_rule', '?'))}</p>",
        "<h2>Metrics</h2>",
        headline_metrics_table(metrics).to_html(),
    ]
    if per_class:
        rows = [
            (k, names[int(k)] if int(k) < len(names) else "", f"{v:.4g}")
            for k, v in per_class.items()
        ]
        body += [
            "<h2>Mean score per test class</h2>",
            Table(["class", "name", "mean score"], rows).to_html(),
        ]
    body += [
        "<h2>Plots</h2>",
        _plots(run.plot_files()),
        "<h2>Configuration</h2>",
        f"<pre>{html.escape((run / RunDir.CONFIG).read_text())}</pre>",
    ]
    if info.get("split"):
        split = Table(["part", "images"], list(info["split"].items()))
        body += ["<h2>Data</h2>", split.to_html()]
    return page(f"anomalia run: {run.path.name}", "\n".join(body))


def benchmark_report(directory: Path) -> str:
    """A benchmark: summary tables beside published numbers, plots, the grid's configuration.

    The tables are built from ``results.csv``, as ``summary.md``'s are.
    """
    rows = read_result_rows(directory / "results.csv")
    dataset = rows[0]["dataset"] if rows else "fashion_mnist"
    body = [
        f"<p>{html.escape(SUMMARY_NOTE)}</p>",
        *(table.to_html() for table in summary_tables(rows, dataset)),
        "<h2>Plots</h2>",
        _plots(sorted((directory / "plots").glob("*.png"))),
    ]
    if (directory / "benchmark.yaml").exists():
        body += [
            "<h2>Configuration</h2>",
            f"<pre>{html.escape((directory / 'benchmark.yaml').read_text())}</pre>",
        ]
    return page(f"anomalia benchmark: {directory.name}", "\n".join(body))


def write_report(directory: str | Path, output: str | Path | None = None) -> Path:
    """Write ``report.html`` for a run directory or a benchmark directory; returns its path."""
    directory = Path(directory)
    run = RunDir(directory)
    if run.is_finished:
        text = run_report(run)
    elif (directory / "summary.md").is_file() and (directory / "results.csv").is_file():
        text = benchmark_report(directory)
    else:
        raise DataError(
            f"{directory} is neither a finished run directory (metrics.json) nor a summarised "
            "benchmark directory (summary.md and results.csv)"
        )
    target = Path(output) if output else directory / RunDir.REPORT
    with atomic_open(target) as handle:
        handle.write(text)
    return target

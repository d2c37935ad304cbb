"""Self-contained HTML pages (images inlined as data URIs, no network, no scripts from outside)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1.5rem;
       max-width: 72rem; color: #222; }
h1, h2, h3 { font-weight: 600; } table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f3f3f3; }
img { max-width: 100%; margin: 0.5rem 0 1.5rem; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; } .note { color: #555; }
"""

# Marks the page with how many images decoded, so a headless browser test can check them.
_CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = `${ok}/${imgs.length}`;
});
</script>
"""


def image_tag(path: Path, alt: str) -> str:
    """An <img> with the PNG inlined."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def markdown_to_html(text: str) -> str:
    """The small Markdown subset anomalia writes: headings, pipe tables, paragraphs, code."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + html.escape("\n".join(lines[i + 1 : j])) + "</pre>")
            i = j + 1
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{html.escape(heading.group(2))}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            out.append(table_html(rows[0], [r for r in rows[1:] if not set("".join(r)) <= {"-"}]))
            continue
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
        i += 1
    return "\n".join(out)


def table_html(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str) -> str:
    """A complete HTML document."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n{_CHECK_SCRIPT}</body></html>\n"
    )


def _plots(directory: Path) -> str:
    return "\n".join(
        f"<h3>{html.escape(p.stem.replace('_', ' '))}</h3>\n{image_tag(p, p.stem)}"
        for p in sorted((directory / "plots").glob("*.png"))
    )


def run_report(run_dir: Path) -> str:
    """One training run: headline metrics, plots, configuration."""
    import json

    from anomalia.reporting.tables import metrics_table

    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    per_class = metrics.get("mean_score_by_class", {})
    names = info.get("class_names", [])
    body = [
        f'<p class="note">{html.escape(str(run_dir))}; '
        f"status {html.escape(info.get('status', '?'))}; "
        f"threshold: {html.escape(metrics.get('threshold_rule', '?'))}</p>",
        "<h2>Metrics</h2>",
        markdown_to_html(metrics_table(metrics)),
    ]
    if per_class:
        rows = [
            (k, names[int(k)] if int(k) < len(names) else "", f"{v:.4g}")
            for k, v in per_class.items()
        ]
        body += [
            "<h2>Mean score per test class</h2>",
            table_html(["class", "name", "mean score"], rows),
        ]
    body += [
        "<h2>Plots</h2>",
        _plots(run_dir),
        "<h2>Configuration</h2>",
        f"<pre>{html.escape((run_dir / 'config.yaml').read_text())}</pre>",
    ]
    if info.get("split"):
        body += ["<h2>Data</h2>", table_html(["part", "images"], list(info["split"].items()))]
    return page(f"anomalia run: {run_dir.name}", "\n".join(body))


def benchmark_report(directory: Path) -> str:
    """A benchmark: summary tables beside published numbers, plots, the grid's configuration."""
    summary = (directory / "summary.md").read_text()
    summary = summary.split("\n", 1)[1] if summary.startswith("# ") else summary  # page has h1
    body = [
        markdown_to_html(summary),
        "<h2>Plots</h2>",
        _plots(directory),
    ]
    if (directory / "benchmark.yaml").exists():
        body += [
            "<h2>Configuration</h2>",
            f"<pre>{html.escape((directory / 'benchmark.yaml').read_text())}</pre>",
        ]
    return page(f"anomalia benchmark: {directory.name}", "\n".join(body))


def write_report(directory: str | Path, output: str | Path | None = None) -> Path:
    """Write ``report.html`` for a run directory or a benchmark directory; returns its path."""
    from anomalia.errors import DataError
    from anomalia.utils import atomic_open

    directory = Path(directory)
    if (directory / "metrics.json").is_file():
        text = run_report(directory)
    elif (directory / "summary.md").is_file():
        text = benchmark_report(directory)
    else:
        raise DataError(
            f"{directory} is neither a finished run directory (metrics.json) nor a summarised "
            "benchmark directory (summary.md)"
        )
    target = Path(output) if output else directory / "report.html"
    with atomic_open(target) as handle:
        handle.write(text)
    return target

"""Summaries of benchmark results: tables beside published numbers, and plots.

Functions take the rows of a benchmark's ``results.csv`` (dicts of strings), so they work on a
finished file without any model or data. Tables are :class:`~anomalia.reporting.tables.Table`
data (``summary_tables``, ``per_class_table``); ``summary_markdown`` and ``per_class_markdown``
render them as the Markdown of ``summary.md``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from anomalia.reporting.published import ONE_CLASS_FMNIST, published_for
from anomalia.reporting.tables import Table

Rows = Sequence[dict[str, str]]


#: The columns of ``results.csv`` that the summary reads.
SUMMARY_FIELDS = (
    "dataset", "method", "normal_class", "anomaly_ratio", "n_known_anomaly_classes", "seed",
    "auroc", "auprc",
)  # fmt: skip


def read_result_rows(
    path: str | Path, required: Sequence[str] = SUMMARY_FIELDS
) -> list[dict[str, str]]:
    """Rows of a benchmark's ``results.csv`` that hold every ``required`` column (none when
    the file does not exist); a torn last line (a kill mid-write) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    return [
        r
        for r in csv.DictReader(lines)
        if None not in r and all(r.get(f) is not None for f in required)
    ]


def _protocol(row: dict[str, str]) -> tuple[float, int | None]:
    known = row["n_known_anomaly_classes"]
    return float(row["anomaly_ratio"]), int(known) if known else None


def _protocol_name(ratio: float, known: int | None) -> str:
    if ratio == 0:
        return "gamma_l = 0, one-class"
    source = "all other classes" if known is None else f"{known} class(es)"
    return f"gamma_l = {ratio:g}, labelled anomalies from {source}"


def method_stats(rows: Rows) -> list[dict[str, Any]]:
    """Per (protocol, method): mean AUROC/AUPRC over classes and seeds, std over seeds.

    The std is that of the per-seed means over classes (the spread a reader sees when repeating
    the whole benchmark with another seed); with one seed it is absent.
    """
    groups: dict[tuple[float, int | None, str], dict[int, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        key = (*_protocol(r), r["method"])
        groups[key][int(r["seed"])].append((float(r["auroc"]), float(r["auprc"])))
    stats = []
    for (ratio, known, method), by_seed in groups.items():
        seed_means = np.array([np.mean(v, axis=0) for v in by_seed.values()])  # (seeds, 2)
        n_classes = {len(v) for v in by_seed.values()}
        stats.append({
            "anomaly_ratio": ratio, "n_known_anomaly_classes": known, "method": method,
            "auroc_mean": float(seed_means[:, 0].mean()),
            "auroc_std": float(seed_means[:, 0].std(ddof=1)) if len(seed_means) > 1 else None,
            "auprc_mean": float(seed_means[:, 1].mean()),
            "auprc_std": float(seed_means[:, 1].std(ddof=1)) if len(seed_means) > 1 else None,
            "n_seeds": len(seed_means), "n_classes": max(n_classes),
        })  # fmt: skip
    return sorted(
        stats, key=lambda s: (s["anomaly_ratio"], str(s["n_known_anomaly_classes"]), s["method"])
    )


def _pm(mean: float, std: float | None) -> str:
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


#: The paragraph above the summary's tables.
SUMMARY_NOTE = "AUROC and AUPRC in percent: mean over normal classes and seeds ± std over seeds."


def summary_tables(rows: Rows, dataset: str = "fashion_mnist") -> list[Table]:
    """Per protocol: mean AUROC/AUPRC per method beside the matching published numbers (titled
    with the protocol), then AUROC per normal class.

    Published numbers are Fashion-MNIST's, so they are added only for ``dataset ==
    "fashion_mnist"``.
    """
    stats = method_stats(rows)
    tables = []
    protocols = sorted(
        {(s["anomaly_ratio"], s["n_known_anomaly_classes"]) for s in stats},
        key=lambda p: (p[0], str(p[1])),
    )
    for ratio, known in protocols:
        here = [
            s for s in stats if (s["anomaly_ratio"], s["n_known_anomaly_classes"]) == (ratio, known)
        ]
        body = [
            (f"anomalia {s['method']}", _pm(s["auroc_mean"], s["auroc_std"]),
             _pm(s["auprc_mean"], s["auprc_std"]), f"{s['n_seeds']} x {s['n_classes']}", "this run")
            for s in here
        ]  # fmt: skip
        notes = []
        if dataset == "fashion_mnist":
            body += [
                (f"{p.method} [{p.tag}]", f"{p.auroc:.1f}", "-", "-", p.source)
                for p in published_for(ratio, known)
            ]
            partial = [s["method"] for s in here if s["n_classes"] < 10]
            if partial:
                notes.append(
                    "Published numbers average all ten normal classes; "
                    f"{', '.join(partial)} here cover fewer, so they are not comparable."
                )
        tables.append(
            Table(
                ["method", "AUROC", "AUPRC", "seeds x classes", "source"],
                body,
                title=_protocol_name(ratio, known),
                notes=notes,
            )
        )
        tables.append(
            per_class_table(
                [r for r in rows if _protocol(r) == (ratio, known)],
                with_one_class_published=dataset == "fashion_mnist" and ratio == 0,
            )
        )
    localisation = localisation_table(rows)
    return tables + ([localisation] if localisation else [])


def localisation_table(rows: Rows) -> Table | None:
    """Where the rows have pixel metrics (test sets with ground-truth masks): image AUROC,
    pixel AUROC and AUPRO (percent, mean over classes and seeds) per protocol and method."""
    with_pixels = [r for r in rows if r.get("pixel_auroc")]
    if not with_pixels:
        return None
    groups: dict[tuple[float, int | None, str], list[dict[str, str]]] = defaultdict(list)
    for r in with_pixels:
        ratio, known = _protocol(r)
        groups[(ratio, known, r["method"])].append(r)
    body = []
    for (ratio, known, method), group in sorted(groups.items(), key=lambda g: str(g[0])):
        means = [np.mean([float(r[k]) for r in group]) for k in ("auroc", "pixel_auroc", "aupro")]
        shown = [f"{100 * m:.1f}" for m in means]
        body.append((_protocol_name(ratio, known), method, *shown))
    return Table(
        ["protocol", "method", "image AUROC", "pixel AUROC", "AUPRO (FPR <= 0.3)"],
        body,
        title="Localisation (test images with ground-truth masks)",
    )


def summary_markdown(rows: Rows, dataset: str = "fashion_mnist") -> str:
    """:data:`SUMMARY_NOTE` and :func:`summary_tables` as Markdown (the body of summary.md)."""
    tables = summary_tables(rows, dataset)
    return "\n\n".join([SUMMARY_NOTE, *(t.to_markdown() for t in tables)]) + "\n"


def per_class_table(rows: Rows, with_one_class_published: bool = False) -> Table:
    """AUROC (percent, mean over seeds) per normal class and method.

    With ``with_one_class_published`` and all ten classes present, the published one-class
    Fashion-MNIST AUROCs per class are added as columns.
    """
    table = _per_class(rows)
    methods = sorted({m for per in table.values() for m in per})
    classes = sorted(table)
    headers = ["normal class", *methods]
    body: list[list[Any]] = [[c, *(f"{100 * np.mean(table[c][m]):.1f}" if m in table[c] else "-"
                                   for m in methods)] for c in classes]  # fmt: skip
    if with_one_class_published and classes == list(range(10)):
        for p, per_class in ONE_CLASS_FMNIST:
            if per_class:
                headers.append(f"{p.method} [{p.tag}]")
                for row, value in zip(body, per_class, strict=True):
                    row.append(f"{value:.1f}")
    return Table(headers, body)


def per_class_markdown(rows: Rows, with_one_class_published: bool = False) -> str:
    """:func:`per_class_table` as Markdown."""
    return per_class_table(rows, with_one_class_published).to_markdown()


def _per_class(rows: Rows) -> dict[int, dict[str, list[float]]]:
    table: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        table[int(r["normal_class"])][r["method"]].append(float(r["auroc"]))
    return table


def per_class_figure(rows: Rows, title: str = "AUROC per normal class") -> Figure:
    """Grouped bars: one group per normal class, one bar per method (mean over seeds)."""
    table = _per_class(rows)
    methods = sorted({m for per in table.values() for m in per})
    classes = sorted(table)
    width = 0.8 / max(1, len(methods))
    fig = Figure(figsize=(max(6, 0.9 * len(classes) + 2), 4), layout="constrained")
    ax = fig.subplots()
    for i, method in enumerate(methods):
        values = [
            float(np.mean(table[c][method])) if method in table[c] else np.nan for c in classes
        ]
        ax.bar(
            np.arange(len(classes)) + (i - (len(methods) - 1) / 2) * width,
            values,
            width,
            label=method,
        )
    ax.set_xticks(np.arange(len(classes)), [str(c) for c in classes])
    low = min((v for per in table.values() for vs in per.values() for v in vs), default=0.5)
    ax.set(xlabel="normal class", ylabel="AUROC", title=title, ylim=(max(0.0, low - 0.05), 1.0))
    fig.legend(loc="outside lower center", ncols=min(5, len(methods)))
    return fig


def ratio_figure(rows: Rows, title: str = "Mean AUROC against gamma_l") -> Figure:
    """Mean AUROC against the labelled-anomaly ratio, one line per method, std band over seeds."""
    stats = method_stats(rows)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for (method, known), group in _by_method(stats):
        ratios = np.array([s["anomaly_ratio"] for s in group])
        means = np.array([s["auroc_mean"] for s in group])
        stds = np.array([s["auroc_std"] or 0.0 for s in group])
        label = method if known is None else f"{method} (k_l = {known})"
        ax.plot(ratios, means, marker="o", label=label)
        ax.fill_between(ratios, means - stds, means + stds, alpha=0.2)
    ax.set(
        xlabel="gamma_l (labelled anomalies in the training set)", ylabel="mean AUROC", title=title
    )
    ax.legend()
    return fig


def _by_method(stats: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], list[dict]]]:
    """Stats grouped by (method, k_l), each group sorted by gamma_l."""
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for s in stats:
        groups[(s["method"], s["n_known_anomaly_classes"])].append(s)
    return [(k, sorted(v, key=lambda s: s["anomaly_ratio"])) for k, v in groups.items()]

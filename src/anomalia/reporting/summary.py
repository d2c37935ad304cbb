"""Summaries of benchmark results: Markdown/CSV tables beside published numbers, and plots.

Functions take the rows of a benchmark's ``results.csv`` (dicts of strings), so they work on a
finished file without any model or data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from anomalia.reporting.published import ONE_CLASS_FMNIST, published_for
from anomalia.reporting.tables import markdown_table

Rows = Sequence[dict[str, str]]


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


def summary_markdown(rows: Rows, dataset: str = "fashion_mnist") -> str:
    """Mean AUROC tables per protocol with matching published numbers, then per-class tables."""
    stats = method_stats(rows)
    out = ["AUROC and AUPRC in percent: mean over normal classes and seeds ± std over seeds."]
    protocols = sorted(
        {(s["anomaly_ratio"], s["n_known_anomaly_classes"]) for s in stats},
        key=lambda p: (p[0], str(p[1])),
    )
    for ratio, known in protocols:
        out.append(f"\n### {_protocol_name(ratio, known)}\n")
        table = [
            (f"anomalia {s['method']}", _pm(s["auroc_mean"], s["auroc_std"]),
             _pm(s["auprc_mean"], s["auprc_std"]), f"{s['n_seeds']} x {s['n_classes']}", "this run")
            for s in stats if (s["anomaly_ratio"], s["n_known_anomaly_classes"]) == (ratio, known)
        ]  # fmt: skip
        if dataset == "fashion_mnist":
            table += [
                (f"{p.method} [{p.tag}]", f"{p.auroc:.1f}", "-", "-", p.source)
                for p in published_for(ratio, known)
            ]
            partial = [
                s["method"]
                for s in stats
                if s["n_classes"] < 10
                and (s["anomaly_ratio"], s["n_known_anomaly_classes"]) == (ratio, known)
            ]
            if partial:
                out.append(
                    "Published numbers average all ten normal classes; "
                    f"{', '.join(partial)} here cover fewer, so they are not comparable.\n"
                )
        out.append(markdown_table(["method", "AUROC", "AUPRC", "seeds x classes", "source"], table))
        out.append(
            "\n"
            + per_class_markdown(
                [r for r in rows if _protocol(r) == (ratio, known)],
                with_one_class_published=dataset == "fashion_mnist" and ratio == 0,
            )
        )
    return "\n".join(out) + "\n"


def per_class_markdown(rows: Rows, with_one_class_published: bool = False) -> str:
    """AUROC (percent, mean over seeds) per normal class and method."""
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
    return markdown_table(headers, body)


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
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(classes) + 2), 4), layout="constrained")
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
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
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

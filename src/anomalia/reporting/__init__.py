"""Reporting layer: figures (``matplotlib.figure.Figure``, no backend switch), tables as data
rendered to Markdown or HTML, and HTML reports."""

from anomalia.reporting.plots import (
    anomaly_map_figure,
    overlay,
    reconstruction_grid_figure,
    roc_figure,
    save_figure,
    score_histogram_figure,
)
from anomalia.reporting.tables import Table, headline_metrics_table, markdown_table, metrics_table

__all__ = [
    "Table",
    "anomaly_map_figure",
    "headline_metrics_table",
    "markdown_table",
    "metrics_table",
    "overlay",
    "reconstruction_grid_figure",
    "roc_figure",
    "save_figure",
    "score_histogram_figure",
]

"""Reporting layer: figures (matplotlib, Agg) and tables."""

from anomalia.reporting.plots import (
    reconstruction_grid_figure,
    roc_figure,
    save_figure,
    score_histogram_figure,
)
from anomalia.reporting.tables import markdown_table, metrics_table

__all__ = [
    "markdown_table",
    "metrics_table",
    "reconstruction_grid_figure",
    "roc_figure",
    "save_figure",
    "score_histogram_figure",
]

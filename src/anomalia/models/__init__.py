"""Models layer: architectures and losses only (no optimizers, devices, files or logging).

Each model lives in its own folder (``torch_model.py``, ``loss.py`` and a config dataclass in
``__init__.py``); the method registry (:mod:`anomalia.methods`) ties each to its training
module. Channels and image size always come from the data.
"""

from __future__ import annotations

from anomalia.models.common import ModelConfig, ScoringModel

__all__ = ["ModelConfig", "ScoringModel"]

"""anomalia: image anomaly detection when normal images dominate and labelled anomalies are few.

The user-facing object is :class:`anomalia.Detector`; the command line is ``anomalia``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Detector", "__version__"]


def __getattr__(name: str) -> object:
    # Imported lazily so that ``import anomalia.data`` does not pull in Lightning.
    if name == "Detector":
        from anomalia.detector import Detector

        return Detector
    raise AttributeError(f"module 'anomalia' has no attribute {name!r}")

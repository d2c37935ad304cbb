"""Exceptions raised by anomalia.

Every error says what was wrong and what to do about it; callers (the CLI in particular) catch
:class:`AnomaliaError` and print its message without a traceback.
"""

from __future__ import annotations


class AnomaliaError(Exception):
    """Base class of every error anomalia raises on purpose."""


class ConfigError(AnomaliaError, ValueError):
    """A parameter or configuration key is unknown, of the wrong type or out of range."""


class DataError(AnomaliaError, ValueError):
    """Input data is missing, unreadable, corrupt or inconsistent."""


class NotFittedError(AnomaliaError, RuntimeError):
    """A detector was used before ``fit`` was called."""


class TrainingError(AnomaliaError, RuntimeError):
    """Training failed, for example because a loss became NaN or infinite."""

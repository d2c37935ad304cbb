"""Running the service with uvicorn: what ``anomalia serve`` calls."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from anomalia.errors import ConfigError
from anomalia.serve.settings import LOOPBACK_HOSTS, ServeSettings

#: Modules of the ``serve`` extra: (import name, package name).
EXTRA_MODULES = (
    ("fastapi", "fastapi"),
    ("uvicorn", "uvicorn"),
    ("python_multipart", "python-multipart"),
    ("prometheus_client", "prometheus-client"),
)


def check_serve_extra() -> None:
    """Raise :class:`ConfigError` saying how to install the ``serve`` extra when a part of it
    is missing."""
    missing = []
    for module, package in EXTRA_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ConfigError(
            f"anomalia serve needs {', '.join(missing)}: pip install 'anomalia[serve]'"
        )


def run_server(
    model: str | Path,
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    accelerator: str = "auto",
    n_threads: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``model`` (a run directory, a detector file or an ONNX model) until interrupted.

    The model path is checked before the server starts; the model itself loads in the
    background once it has (``/ready`` answers 200 when it is scoring). Binding an address other
    than loopback prints a warning: the service is then reachable from other machines.

    Raises:
        ConfigError: the ``serve`` extra is not installed, or a setting is out of range.
        DataError: ``model`` is not a model.
    """
    check_serve_extra()
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must lie in [0, 65535], got {port}")
    import uvicorn

    from anomalia.serve.app import create_app
    from anomalia.serve.scorers import check_model_path, load_scorer

    path = check_model_path(model)
    if host not in LOOPBACK_HOSTS:
        print(
            f"anomalia serve: warning: listening on {host}, reachable from other machines"
            + ("" if settings.api_key else "; anyone who can reach it can score images (--api-key)")
            + "; the service speaks plain HTTP, so put it behind a TLS proxy",
            file=sys.stderr,
        )
    if n_threads is not None and n_threads < 1:
        raise ConfigError(f"threads must be at least 1, got {n_threads}")
    app = create_app(lambda: load_scorer(path, accelerator, n_threads), settings)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"anomalia serve: {path} on http://{shown}:{port}/ (page /, API docs /docs, "
        "metrics /metrics)",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )

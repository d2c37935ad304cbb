"""Ray: benchmark grids as Ray tasks (:mod:`~anomalia.cluster.executor`) and hyperparameter
searches with Ray Tune (:mod:`~anomalia.cluster.tune`).

Layer: above :mod:`anomalia.benchmark` (it runs the benchmark's cells), below the CLI. Ray is an
optional extra (``pip install 'anomalia[ray]'``); nothing here imports it until a command asks
for it, and :func:`require_ray` says how to install it when it is missing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from anomalia.errors import ConfigError

INSTALL_HINT = "pip install 'anomalia[ray]'"


def require_ray(what: str) -> Any:
    """Import and return the ``ray`` module, or raise a :class:`ConfigError` naming ``what``
    needs it and how to install it."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            f"{what} needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        )
    import ray

    return ray


@contextmanager
def ray_session(address: str | None, what: str, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to the Ray cluster at ``address`` (``auto``: the one this machine belongs to), or
    start a private Ray instance on this machine when ``address`` is None; shut the connection
    (and a private instance) down on leaving.

    A private instance listens on 127.0.0.1 only: it serves this one command, so it opens no
    port to the network. Workers' output stays in Ray's logs (each cell keeps its own log), not
    on the driver's console.

    Yields:
        the ``ray`` module.
    """
    ray = require_ray(what)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from our commands
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        # "local": a new instance even when this machine already runs a Ray cluster
        kwargs.update(address="local", num_cpus=num_cpus, include_dashboard=False)
    else:
        kwargs["address"] = address
    try:
        with _loopback_only(address is None):
            ray.init(**kwargs)
    except ConnectionError as err:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address!r} ({err}); start one with `ray start "
            "--head` (see README, 'Several machines'), or leave out --address for a Ray "
            "instance on this machine only"
        ) from err
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def _loopback_only(active: bool) -> Iterator[None]:
    """While starting a private instance, make Ray take 127.0.0.1 as this node's address, so
    its servers listen on the loopback interface only.

    Ray on Linux replaces a loopback address given to ``ray.init`` with the machine's network
    address; its single-machine mode (the one it uses on macOS and Windows) keeps loopback.
    That mode is a module constant read when an address is needed, so it is switched for the
    start-up only (and left alone if a future Ray renames it).
    """
    from ray._private import ray_constants

    name = "ENABLE_RAY_CLUSTER"
    if not active or not hasattr(ray_constants, name):
        yield
        return
    before = getattr(ray_constants, name)
    setattr(ray_constants, name, False)
    try:
        yield
    finally:
        setattr(ray_constants, name, before)

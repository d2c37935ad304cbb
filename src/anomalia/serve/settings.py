"""The service's limits and batching settings, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.errors import ConfigError

#: Hosts that only this machine can reach; any other bind address prints a warning.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Pillow refuses images beyond twice this many pixels as decompression bombs; the service's own
#: limit stays below it so that every refusal is the service's, with its message.
PILLOW_MAX_IMAGE_PIXELS = 89_478_485


@dataclass(frozen=True)
class ServeSettings:
    """How ``anomalia serve`` batches requests and what it accepts.

    Attributes:
        max_batch: images scored together at most; requests arriving together share a batch.
        n_workers: batches scored at once, each in its own thread (one model in memory).
        batch_wait_ms: how long a batch waits for more requests after its first one arrives.
        max_queue: requests waiting to be scored at most; beyond it ``/score`` answers 503.
        max_request_bytes: largest request body accepted (413 beyond it).
        max_images_per_request: most images in one request (413 beyond it).
        max_image_pixels: largest image, width x height, decoded (413 beyond it).
        api_key: when set, ``/score`` needs it (``Authorization: Bearer KEY`` or ``X-API-Key``).
    """

    max_batch: int = 32
    n_workers: int = 1
    batch_wait_ms: float = 2.0
    max_queue: int = 256
    max_request_bytes: int = 16 * 2**20
    max_images_per_request: int = 64
    max_image_pixels: int = 25_000_000
    api_key: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_batch",
            "n_workers",
            "max_queue",
            "max_request_bytes",
            "max_images_per_request",
            "max_image_pixels",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.max_image_pixels > PILLOW_MAX_IMAGE_PIXELS:
            raise ConfigError(
                f"max_image_pixels must be at most {PILLOW_MAX_IMAGE_PIXELS} (Pillow's "
                f"decompression-bomb limit), got {self.max_image_pixels}"
            )
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError(
                f"batch_wait_ms must lie in [0, 1000] milliseconds, got {self.batch_wait_ms}"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key must not be empty (leave it out for no key)")

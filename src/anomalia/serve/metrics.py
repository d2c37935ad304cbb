"""The service's Prometheus metrics, in a registry of its own (one per app, so several apps in
one process, as in tests, do not collide)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from anomalia.serve.scorers import ModelInfo

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServiceMetrics:
    """Requests, errors, latency, images scored and batch sizes.

    Exposed names: ``anomalia_requests_total{endpoint,code}``,
    ``anomalia_request_errors_total{endpoint,code}`` (4xx and 5xx answers),
    ``anomalia_request_duration_seconds{endpoint}`` (histogram),
    ``anomalia_images_scored_total``, ``anomalia_batch_images`` (histogram of images per scored
    batch), ``anomalia_queue_requests`` (waiting to be scored), ``anomalia_ready`` and
    ``anomalia_model_info{method,run,source,anomalia_version}``.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "anomalia_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "code"],
            registry=r,
        )
        self.errors = Counter(
            "anomalia_request_errors",
            "HTTP requests answered with a 4xx or 5xx status",
            ["endpoint", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "anomalia_request_duration_seconds",
            "time from request to response",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.images = Counter("anomalia_images_scored", "images scored", registry=r)
        self.batches = Histogram(
            "anomalia_batch_images", "images per scored batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue = Gauge("anomalia_queue_requests", "requests waiting to be scored", registry=r)
        self.ready = Gauge("anomalia_ready", "1 when the model is loaded and scoring", registry=r)
        self.model = Gauge(
            "anomalia_model_info",
            "the model being served (value 1)",
            ["method", "run", "source", "anomalia_version"],
            registry=r,
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, n_images: int, n_jobs: int) -> None:
        self.images.inc(n_images)
        self.batches.observe(n_images)

    def set_model(self, info: ModelInfo) -> None:
        self.model.labels(info.method, info.run, info.source, info.anomalia_version).set(1)
        self.ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

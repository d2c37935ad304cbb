"""The FastAPI app: ``/score``, ``/health``, ``/ready``, ``/metrics`` and the page at ``/``.

Every error is a JSON body ``{"error": CODE, "message": TEXT}`` with a 4xx or 5xx status; a bad
request is answered on its own and never reaches the batch other requests are scored in
(images are decoded and checked before they are queued).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from anomalia import __version__
from anomalia.evaluation import flag
from anomalia.serve.batching import Batcher, QueueFullError
from anomalia.serve.images import IMAGE_CONTENT_TYPES, ImageRejectedError, decode_image, render_map
from anomalia.serve.metrics import CONTENT_TYPE, ServiceMetrics
from anomalia.serve.page import CONTENT_SECURITY_POLICY, PAGE
from anomalia.serve.scorers import ModelInfo, Scorer
from anomalia.serve.settings import ServeSettings

log = logging.getLogger("anomalia.serve")

_ENDPOINTS = frozenset({"/", "/score", "/health", "/ready", "/metrics", "/openapi.json", "/docs"})
_PART_TYPES = IMAGE_CONTENT_TYPES | {"application/octet-stream", ""}


# ------------------------------------------------------------------- response shapes (OpenAPI)
class ErrorBody(BaseModel):
    error: str
    message: str


class AnomalyMap(BaseModel):
    overlay_png: str
    map_png: str
    min: float
    max: float
    height: int
    width: int


class ImageResult(BaseModel):
    index: int
    filename: str | None
    score: float | None
    is_anomaly: bool
    threshold: float
    anomaly_map: AnomalyMap | None = None


class ScoreResponse(BaseModel):
    model: ModelInfo
    results: list[ImageResult]


class Ready(BaseModel):
    ready: bool
    model: ModelInfo | None = None
    api_key_required: bool
    limits: dict[str, int]
    message: str | None = None


class ServiceError(Exception):
    """An error answered as ``{"error": code, "message": message}`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "undecodable image, no images, or maps asked of a method without maps",
        401: "missing or wrong API key",
        413: "request, image count or image pixels over the limits",
        415: "content type or image format not accepted",
        422: "image mode that cannot be converted, or a bad query parameter",
        503: "model not loaded yet, or too many requests waiting",
    }.items()
}
_SCORE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
                "required": ["files"],
            }
        },
        **{
            kind: {"schema": {"type": "string", "format": "binary"}}
            for kind in ("image/png", "image/jpeg", "image/bmp", "image/tiff")
        },
    },
}


# ------------------------------------------------------------------------------------ state
class _State:
    """What the app holds while it runs: the scorer once loaded, its batcher, the metrics."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.scorer: Scorer | None = None
        self.batcher: Batcher | None = None
        self.load_error: str | None = None

    async def load(self, source: Scorer | Callable[[], Scorer]) -> None:
        try:
            scorer = source if not callable(source) else await run_in_threadpool(source)
            info = scorer.info
            # One image through the model before saying ready: the first request is not slow,
            # and a model that cannot score is never ready.
            await run_in_threadpool(
                scorer.score,
                np.zeros((1, info.in_channels, info.image_size, info.image_size), np.uint8),
            )
        except Exception as err:
            self.load_error = f"{type(err).__name__}: {err}"
            log.error("anomalia serve: the model could not be loaded: %s", self.load_error)
            return
        batcher = Batcher(
            scorer,
            max_batch=self.settings.max_batch,
            n_workers=self.settings.n_workers,
            batch_wait_ms=self.settings.batch_wait_ms,
            max_queue=self.settings.max_queue,
            on_batch=self.metrics.observe_batch,
        )
        batcher.start()
        self.scorer, self.batcher = scorer, batcher
        self.metrics.set_model(info)
        log.info("anomalia serve: ready: %s run %s (%s)", info.method, info.run, info.source)


# ------------------------------------------------------------------------------- middleware
class _Observe:
    """Counts and times every HTTP request by endpoint and status (pure ASGI, no buffering)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observed_send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in _ENDPOINTS else "other"
            self.metrics.observe_request(endpoint, status, time.perf_counter() - start)


# -------------------------------------------------------------------------------- the app
def create_app(model: Scorer | Callable[[], Scorer], settings: ServeSettings | None = None) -> Any:
    """The service for ``model``: a :class:`Scorer`, or a function loading one (called in a
    thread at start-up, so ``/health`` answers while a large model loads; ``/ready`` says when
    it is done).

    Returns:
        a FastAPI app; run it with uvicorn (``anomalia serve`` does).
    """
    settings = settings or ServeSettings()
    state = _State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load(model))
        try:
            yield
        finally:
            loading.cancel()
            if state.batcher is not None:
                await state.batcher.stop()

    app = FastAPI(
        title="anomalia",
        summary="Image anomaly scores from a trained anomalia model",
        description="POST images to /score: each gets a score (higher = more anomalous) and "
        "is_anomaly (score >= the run's threshold). Errors are JSON {error, message}.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.serve = state

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, err: ServiceError) -> Any:
        return _error(err.status, err.code, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return _error(err.status_code, code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> Any:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in err.errors()
        )
        return _error(422, "bad_parameter", problems)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Any:
        log.exception("anomalia serve: unexpected error on %s", request.url.path)
        return _error(500, "internal_error", f"{type(err).__name__}: {err}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> Any:
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.get("/health", summary="liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="readiness: the model is loaded and scoring",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "loading, or the model failed to load"}},
    )
    async def ready() -> Any:
        body: dict[str, Any] = {
            "ready": state.batcher is not None,
            "model": state.scorer.info.as_dict() if state.scorer is not None else None,
            "api_key_required": settings.api_key is not None,
            "limits": {
                "max_batch": settings.max_batch,
                "max_request_bytes": settings.max_request_bytes,
                "max_images_per_request": settings.max_images_per_request,
                "max_image_pixels": settings.max_image_pixels,
            },
        }
        if state.batcher is None:
            body["message"] = (
                f"the model failed to load: {state.load_error}"
                if state.load_error
                else "loading the model"
            )
            return JSONResponse(body, 503)
        return body

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Any:
        state.metrics.queue.set(state.batcher.queued if state.batcher is not None else 0)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.post(
        "/score",
        summary="score images",
        description="One or more images as multipart/form-data file fields (any field name, "
        "e.g. files), or one image as the raw body with an image content type. Each image is "
        "converted to the model's channels and resized to its image size, like the training "
        "data. maps=1 adds each image's anomaly map as base64 PNGs, for methods that make "
        "maps.",
        response_model=ScoreResponse,
        responses=_ERRORS,
        openapi_extra={"requestBody": _SCORE_BODY},
    )
    async def score(
        request: Request,
        maps: bool = Query(False, description="add anomaly maps (methods with maps only)"),
    ) -> Any:
        _check_key(request, settings)
        if state.batcher is None or state.scorer is None:
            raise ServiceError(
                503, "not_ready", state.load_error or "the model is still loading; retry shortly"
            )
        info = state.scorer.info
        if maps and not info.has_maps:
            raise ServiceError(
                400,
                "no_maps",
                f"method {info.method!r} makes no anomaly maps; ask without maps=1",
            )
        files = await _read_images(request, settings)
        mode, size = info.mode, info.image_size

        def decode_all() -> np.ndarray:
            arrays = []
            for index, (name, data) in enumerate(files):
                try:
                    arrays.append(
                        decode_image(
                            data, mode=mode, image_size=size, max_pixels=settings.max_image_pixels
                        )
                    )
                except ImageRejectedError as err:
                    label = f"image {index}" + (f" ({name})" if name else "")
                    raise ServiceError(err.status, err.code, f"{label}: {err.message}") from err
            return np.stack(arrays)  # (N, C, S, S)

        images = await run_in_threadpool(decode_all)
        try:
            scores, image_maps = await state.batcher.submit(images, want_maps=maps)
        except QueueFullError as err:
            raise ServiceError(
                503,
                "busy",
                f"too many requests waiting ({err}); retry shortly",
                {"Retry-After": "1"},
            ) from err
        flags = flag(scores, info.threshold)
        results: list[dict[str, Any]] = [
            {
                "index": index,
                "filename": name,
                "score": float(value) if math.isfinite(value) else None,
                "is_anomaly": bool(is_anomaly),
                "threshold": info.threshold,
            }
            for index, ((name, _), value, is_anomaly) in enumerate(
                zip(files, scores, flags, strict=True)
            )
        ]
        if image_maps is not None:
            rendered = await run_in_threadpool(
                lambda: [render_map(im, m) for im, m in zip(images, image_maps, strict=True)]
            )
            for result, anomaly_map in zip(results, rendered, strict=True):
                result["anomaly_map"] = anomaly_map
        return JSONResponse({"model": info.as_dict(), "results": results})

    app.add_middleware(_Observe, metrics=state.metrics)
    return app


# ------------------------------------------------------------------------------- requests
def _check_key(request: Request, settings: ServeSettings) -> None:
    if settings.api_key is None:
        return
    given = request.headers.get("x-api-key")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if given is None and scheme.lower() == "bearer":
        given = token.strip()
    if not given or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise ServiceError(
            401,
            "unauthorized",
            "missing or wrong API key: send Authorization: Bearer KEY or X-API-Key: KEY",
            {"WWW-Authenticate": "Bearer"},
        )


#: A refused body is read and thrown away up to this many times the limit, so that the client,
#: still sending, can read the 413 instead of seeing its connection reset; beyond, it is cut.
_DRAIN_FACTOR = 4


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 when it exceeds ``limit`` bytes (never held in memory
    beyond ``limit``: the rest is read and dropped, up to ``_DRAIN_FACTOR`` times ``limit``)."""
    declared = request.headers.get("content-length")
    size, chunks = 0, []
    if declared is not None and not declared.isdigit():
        raise ServiceError(400, "bad_request", f"invalid Content-Length {declared!r}")
    too_large = declared is not None and int(declared) > limit
    if not (declared is not None and int(declared) > _DRAIN_FACTOR * limit):
        async for chunk in request.stream():
            size += len(chunk)
            too_large = too_large or size > limit
            if size > _DRAIN_FACTOR * limit:
                break  # stop reading: the connection is closed after the answer
            if not too_large:
                chunks.append(chunk)
            else:
                chunks.clear()
    if too_large:
        shown = f" ({int(declared)} bytes)" if declared is not None else ""
        raise ServiceError(
            413,
            "request_too_large",
            f"the request{shown} is larger than the limit of {limit} bytes "
            "(anomalia serve --max-request-bytes)",
        )
    return b"".join(chunks)


async def _read_images(request: Request, settings: ServeSettings) -> list[tuple[str | None, bytes]]:
    """(file name or None, bytes) of each image in the request, in order."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind != "multipart/form-data" and kind not in IMAGE_CONTENT_TYPES:
        raise ServiceError(
            415,
            "unsupported_content_type",
            f"content type {content_type or 'none'!r} is not accepted; send multipart/form-data "
            "file fields, or one image as the body with Content-Type "
            + ", ".join(sorted(IMAGE_CONTENT_TYPES)),
        )
    body = await _read_body(request, settings.max_request_bytes)
    if kind != "multipart/form-data":
        if not body:
            raise ServiceError(400, "empty_request", "the request body is empty")
        return [(None, body)]
    return await _read_form(request, body, settings)


def _too_many_images(limit: int) -> ServiceError:
    return ServiceError(
        413,
        "too_many_images",
        f"more than {limit} images in one request (anomalia serve --max-images-per-request)",
    )


async def _read_form(
    request: Request, body: bytes, settings: ServeSettings
) -> list[tuple[str | None, bytes]]:
    sent = False

    async def replay() -> dict[str, Any]:  # the body already read, for the form parser
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    limit = settings.max_images_per_request
    try:
        form = await Request(request.scope, replay).form(max_files=limit, max_fields=1000)
    except StarletteHTTPException as err:
        if "too many files" in str(err.detail).lower():
            raise _too_many_images(limit) from err
        raise ServiceError(400, "bad_form", f"unreadable multipart form: {err.detail}") from err
    except Exception as err:
        raise ServiceError(400, "bad_form", f"unreadable multipart form: {err}") from err
    try:
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise ServiceError(
                400,
                "no_images",
                "the form holds no files; send images as file fields, e.g. "
                "curl -F files=@a.png -F files=@b.png",
            )
        if len(uploads) > limit:
            raise _too_many_images(limit)
        files = []
        for index, upload in enumerate(uploads):
            part_type = (upload.content_type or "").split(";")[0].strip().lower()
            if part_type not in _PART_TYPES:
                raise ServiceError(
                    415,
                    "unsupported_content_type",
                    f"image {index} ({upload.filename}): content type {part_type!r} is not "
                    "accepted; parts may be " + ", ".join(sorted(_PART_TYPES - {""})),
                )
            files.append((upload.filename or None, await upload.read()))
        return files
    finally:
        await form.close()

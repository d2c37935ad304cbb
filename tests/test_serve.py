"""`anomalia serve`: the endpoints, batching, hostile input, the API key, the ONNX path, one real
uvicorn server and the web page in headless Chromium.

Most tests use FastAPI's TestClient (no socket). One module fixture starts a real server with
the CLI on 127.0.0.1 and a free port, and stops it by its process id; the browser test drives
the page on it through Chromium's DevTools protocol over a pipe (no extra package): it sets a
generated PNG on the page's file input exactly as a user picking the file would, then reads the
row the page's script writes, and checks that the browser logged no error (a Content-Security-
Policy violation would be one).
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import io
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'anomalia[serve]'")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient

from anomalia import Detector
from anomalia.cli import main
from anomalia.data import load_image
from anomalia.data.image_files import SUPPORTED_FORMATS as DATA_FORMATS
from anomalia.methods import METHODS
from anomalia.serve import DetectorScorer, ModelInfo, ServeSettings, load_scorer
from anomalia.serve.app import create_app
from anomalia.serve.batching import Batcher, QueueFullError
from anomalia.serve.images import (
    SUPPORTED_FORMATS,
    ImageRejectedError,
    decode_image,
)

from .conftest import synthetic_images

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SIZE = 16  # the synthetic images' side


# ---------------------------------------------------------------------------------- helpers
def png(pixels: np.ndarray, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def normal_and_anomalous(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 16, 16) of class 0 (normal) and of class 5 (anomalous) stripes."""
    return (
        synthetic_images(np.zeros(n, dtype=np.int64), seed=11),
        synthetic_images(np.full(n, 5), seed=12),
    )


@contextmanager
def serving(model: Any, settings: ServeSettings | None = None) -> Iterator[TestClient]:
    """A TestClient on a started app whose model is loaded (``/ready`` answered 200)."""
    with TestClient(create_app(model, settings or ServeSettings())) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.02)
        yield client


def files(*images: np.ndarray) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"img{i}.png", png(im), "image/png")) for i, im in enumerate(images)]


@pytest.fixture(scope="module")
def run_dir(idx_dir, tmp_path_factory) -> Path:
    """A knn run on the synthetic IDX data (class 0 normal): trains in seconds."""
    out = tmp_path_factory.mktemp("serve-runs")
    args = ["train", "--method", "knn", "--dataset", "idx", "--data-dir", str(idx_dir)]
    fast = ["--no-plots", "--no-progress-bar", "--accelerator", "cpu", "--name", "knn-tiny"]
    assert main([*args, "--output-dir", str(out), *fast]) == 0
    return out / "knn" / "idx" / "class0" / "knn-tiny"


@pytest.fixture(scope="module")
def detector(run_dir) -> Detector:
    return Detector.load(run_dir / "model.pt", accelerator="cpu")


@pytest.fixture(scope="module")
def client(run_dir) -> Iterator[TestClient]:
    with serving(load_scorer(run_dir, "cpu")) as client:
        yield client


def no_maps_scorer() -> DetectorScorer:
    """An untrained deep_sad detector (a method without maps): scoring works, maps do not."""
    method = "deep_sad"
    assert not METHODS[method].has_maps
    det = Detector(method, accelerator="cpu")
    det.model_config_, det.train_config_ = det.resolved_config()
    det.in_channels_, det.image_size_ = 1, SIZE
    det.model_ = det.model_config_.build(1, SIZE).eval()
    det.threshold_, det.threshold_rule_ = 0.5, "set by the test"
    det.device_ = "cpu"
    return DetectorScorer.from_detector(det, "untrained")


class FakeScorer:
    """Score = mean pixel value / 255 (so each image's score is known); maps = the pixels.
    ``gate``, when given, holds every scoring call until it is set; images whose first pixel is
    ``poison`` make a call fail."""

    def __init__(self, gate: threading.Event | None = None, poison: int | None = None) -> None:
        self.info = ModelInfo(
            method="fake",
            run="fake-run",
            source="test",
            in_channels=1,
            image_size=SIZE,
            threshold=0.5,
            threshold_rule="set by the test",
            has_maps=True,
        )
        self.gate = gate
        self.poison = poison
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def score(self, images: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(30)
        if self.poison is not None and (images[:, 0, 0, 0] == self.poison).any():
            raise RuntimeError("poisoned image")
        with self.lock:
            self.batches.append(len(images))
        return images.reshape(len(images), -1).mean(axis=1) / 255.0

    def anomaly_maps(self, images: np.ndarray) -> np.ndarray:
        return images[:, 0].astype(np.float32) / 255.0


def uniform(value: int, n: int = 1) -> np.ndarray:
    """(n, 1, 16, 16) uint8 images of one grey value."""
    return np.full((n, 1, SIZE, SIZE), value, dtype=np.uint8)


# ---------------------------------------------------------------------- decoding like training
def _image_kinds() -> dict[str, tuple[Image.Image, str, dict[str, Any]]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rotated = Image.fromarray(rgb)
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    wide16 = (rng.random((12, 40)) * 65535).astype(np.uint16)
    return {
        "gray png": (Image.fromarray(rgb[..., 0]), "PNG", {}),
        "rgb png": (Image.fromarray(rgb), "PNG", {}),
        "rgba png": (Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "PNG", {}),
        "palette png": (Image.fromarray(rgb).convert("P"), "PNG", {}),
        "16-bit png": (Image.fromarray(wide16), "PNG", {}),
        "float tiff": (Image.fromarray(rng.random((9, 9)).astype(np.float32)), "TIFF", {}),
        "exif jpeg": (rotated, "JPEG", {"exif": exif}),
        "bmp": (Image.fromarray(rgb), "BMP", {}),
    }


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("kind", sorted(_image_kinds()))
def test_decoding_bytes_equals_reading_training_files(tmp_path, kind, mode):
    image, fmt, options = _image_kinds()[kind]
    data = encoded(image, fmt, **options)
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(data)
    expected = load_image(path, mode, 16)
    decoded = decode_image(data, mode=mode, image_size=16, max_pixels=10**6)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)


def test_formats_are_the_data_layers():
    assert SUPPORTED_FORMATS == DATA_FORMATS


def test_decoding_refuses_with_a_status_and_a_reason():
    gray = np.zeros((40, 40), dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (20, 20), dtype=np.uint8)
    cases = {
        b"": (400, "empty"),
        b"GIF89a not really": (415, "not a PNG"),
        png(noise)[: len(png(noise)) // 2]: (400, "truncated"),
        png(gray): (413, "1600 pixels"),
        encoded(Image.new("LAB", (4, 4)), "TIFF"): (422, "mode LAB"),
    }
    for data, (status, words) in cases.items():
        with pytest.raises(ImageRejectedError) as caught:
            decode_image(data, mode="L", image_size=8, max_pixels=1000)
        assert caught.value.status == status and words in caught.value.message


def test_pillow_decompression_bomb_is_a_413(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses beyond 2x this
    with pytest.raises(ImageRejectedError) as caught:
        decode_image(png(np.zeros((30, 30), np.uint8)), mode="L", image_size=8, max_pixels=10**6)
    assert caught.value.status == 413 and "decompression bomb" in caught.value.message


# ---------------------------------------------------------------------------------- endpoints
def test_health_ready_and_page(client, detector):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["api_key_required"] is False
    model = ready["model"]
    assert model["method"] == "knn" and model["run"] == "knn-tiny"
    assert model["source"] == "run directory"
    assert model["threshold"] == pytest.approx(detector.threshold_)
    assert (model["in_channels"], model["image_size"]) == (1, SIZE)
    page = client.get("/")
    assert page.status_code == 200 and "<script>" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external resources
    assert "script-src 'sha256-" in page.headers["content-security-policy"]


def test_score_returns_scores_verdicts_and_the_model(client, detector):
    normal, anomalous = normal_and_anomalous()
    response = client.post("/score", files=files(*normal, *anomalous))
    assert response.status_code == 200
    body = response.json()
    assert body["model"]["method"] == "knn" and body["model"]["run"] == "knn-tiny"
    assert body["model"]["anomalia_version"]
    expected = detector.decision_function(np.r_[normal, anomalous][:, None])
    results = body["results"]
    assert [r["filename"] for r in results] == [f"img{i}.png" for i in range(6)]
    scores = np.array([r["score"] for r in results])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)  # PNG is lossless: same pixels
    assert [r["is_anomaly"] for r in results] == (expected >= detector.threshold_).tolist()
    assert all(r["threshold"] == pytest.approx(detector.threshold_) for r in results)
    assert scores[3:].mean() > scores[:3].mean()  # class 5 stripes are anomalous
    assert "anomaly_map" not in results[0]


def test_score_accepts_a_raw_image_body_of_any_size_and_colour(client, detector):
    colour = Image.fromarray(np.dstack([normal_and_anomalous(1)[0][0]] * 3)).resize((40, 40))
    data = encoded(colour, "JPEG")
    response = client.post("/score", content=data, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["filename"] is None
    converted = decode_image(data, mode="L", image_size=SIZE, max_pixels=10**6)
    assert result["score"] == pytest.approx(float(detector.decision_function(converted[None])[0]))


def test_maps_of_a_method_without_maps_are_a_400_naming_it():
    with serving(no_maps_scorer()) as client:
        response = client.post("/score?maps=1", files=files(normal_and_anomalous(1)[0][0]))
        assert response.status_code == 400
        assert response.json()["error"] == "no_maps"
        assert "deep_sad" in response.json()["message"]
        assert client.post("/score", files=files(normal_and_anomalous(1)[0][0])).status_code == 200


def test_maps_are_rendered_as_pngs():
    with serving(FakeScorer()) as client:
        image = np.tile(np.arange(SIZE, dtype=np.uint8) * 16, (SIZE, 1))  # brighter to the right
        (result,) = client.post("/score?maps=1", files=files(image)).json()["results"]
    anomaly_map = result["anomaly_map"]
    assert anomaly_map["max"] == pytest.approx(image.max() / 255)
    gray = np.asarray(Image.open(io.BytesIO(base64.b64decode(anomaly_map["map_png"]))))
    overlay = Image.open(io.BytesIO(base64.b64decode(anomaly_map["overlay_png"])))
    assert gray.shape == (SIZE, SIZE) and gray[:, -1].min() == 255 and gray[:, 0].max() == 0
    assert overlay.mode == "RGB" and overlay.size == (SIZE, SIZE)


def test_maps_of_a_real_detector(client, detector):
    assert METHODS["knn"].has_maps
    normal, anomalous = normal_and_anomalous(1)
    response = client.post("/score?maps=1", files=files(normal[0], anomalous[0]))
    assert response.status_code == 200
    results = response.json()["results"]
    expected = detector.anomaly_maps(np.stack([normal, anomalous]))
    for result, amap in zip(results, expected, strict=True):
        assert result["anomaly_map"]["max"] == pytest.approx(float(amap.max()), rel=1e-5)
        decoded = Image.open(io.BytesIO(base64.b64decode(result["anomaly_map"]["overlay_png"])))
        assert decoded.size == (amap.shape[1], amap.shape[0])


def test_metrics_count_requests_errors_latency_and_images():
    with serving(FakeScorer()) as client:
        client.post("/score", files=files(uniform(10)[0, 0], uniform(20)[0, 0]))
        client.post("/score", content=b"x", headers={"content-type": "text/plain"})
        text = client.get("/metrics").text
    assert 'anomalia_requests_total{code="200",endpoint="/score"} 1.0' in text
    assert 'anomalia_request_errors_total{code="415",endpoint="/score"} 1.0' in text
    assert 'anomalia_request_duration_seconds_count{endpoint="/score"} 2.0' in text
    assert "anomalia_images_scored_total 2.0" in text  # the start-up check is not counted
    assert 'anomalia_model_info{anomalia_version="' in text and "anomalia_ready 1.0" in text


def test_openapi_documents_score():
    with serving(FakeScorer()) as client:
        spec = client.get("/openapi.json").json()
    score = spec["paths"]["/score"]["post"]
    assert "multipart/form-data" in score["requestBody"]["content"]
    assert "image/png" in score["requestBody"]["content"]
    assert {"200", "400", "401", "413", "415"} <= set(score["responses"])


def test_ready_is_503_while_loading_and_when_loading_failed():
    release = threading.Event()

    def slow() -> FakeScorer:
        assert release.wait(30)
        return FakeScorer()

    def broken() -> FakeScorer:
        raise OSError("disk on fire")

    with TestClient(create_app(slow)) as client:
        assert client.get("/health").status_code == 200
        response = client.get("/ready")
        assert response.status_code == 503 and response.json()["message"] == "loading the model"
        assert client.post("/score", files=files(uniform(1)[0, 0])).status_code == 503
        release.set()
    with TestClient(create_app(broken)) as client:
        deadline = time.monotonic() + 30
        while "disk on fire" not in str(client.get("/ready").json()["message"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        response = client.post("/score", files=files(uniform(1)[0, 0]))
        assert response.status_code == 503 and "disk on fire" in response.json()["message"]


# ----------------------------------------------------------------------------------- batching
def test_jobs_waiting_together_share_a_batch_and_get_their_own_results():
    gate = threading.Event()
    scorer = FakeScorer(gate)

    async def scenario() -> list[Any]:
        batcher = Batcher(scorer, max_batch=8, batch_wait_ms=0)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(uniform(255)))
            await asyncio.sleep(0.05)  # the worker now holds the first batch, blocked on the gate
            others = [
                asyncio.ensure_future(batcher.submit(uniform(v, n), want_maps=n == 3))
                for v, n in ((51, 2), (102, 3), (153, 1))
            ]
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(first, *others)
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert scorer.batches == [1, 6]  # the three waiting jobs were scored as one batch
    for (scores, maps), (value, n) in zip(
        results, ((255, 1), (51, 2), (102, 3), (153, 1)), strict=True
    ):
        np.testing.assert_allclose(scores, np.full(n, value / 255))
        if n == 3:
            assert maps.shape == (3, SIZE, SIZE) and np.allclose(maps, value / 255)
        else:
            assert maps is None


def test_a_batch_never_exceeds_max_batch():
    gate = threading.Event()
    scorer = FakeScorer(gate)

    async def scenario() -> None:
        batcher = Batcher(scorer, max_batch=4, batch_wait_ms=0)
        batcher.start()
        try:
            jobs = [asyncio.ensure_future(batcher.submit(uniform(v, 3))) for v in (1, 2, 3)]
            jobs.append(asyncio.ensure_future(batcher.submit(uniform(4, 9))))  # > max_batch
            await asyncio.sleep(0.05)
            gate.set()
            done = await asyncio.gather(*jobs)
            assert [len(scores) for scores, _ in done] == [3, 3, 3, 9]
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert max(scorer.batches) <= 4 and sum(scorer.batches) == 18


def test_a_failing_job_does_not_fail_the_others_in_its_batch():
    gate = threading.Event()
    scorer = FakeScorer(gate, poison=7)

    async def scenario() -> list[Any]:
        batcher = Batcher(scorer, max_batch=8, batch_wait_ms=50)
        batcher.start()
        try:
            jobs = [asyncio.ensure_future(batcher.submit(uniform(v))) for v in (10, 7, 20)]
            await asyncio.sleep(0.1)
            gate.set()
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await batcher.stop()

    good, bad, other = asyncio.run(scenario())
    assert isinstance(bad, RuntimeError) and "poisoned" in str(bad)
    assert good[0][0] == pytest.approx(10 / 255) and other[0][0] == pytest.approx(20 / 255)


def test_a_full_queue_is_refused():
    gate = threading.Event()

    async def scenario() -> None:
        batcher = Batcher(FakeScorer(gate), max_batch=1, batch_wait_ms=0, max_queue=1)
        batcher.start()
        try:
            held = asyncio.ensure_future(batcher.submit(uniform(1)))
            await asyncio.sleep(0.05)  # taken by the worker
            waiting = asyncio.ensure_future(batcher.submit(uniform(2)))
            await asyncio.sleep(0.01)
            with pytest.raises(QueueFullError):
                await batcher.submit(uniform(3))
            gate.set()
            await asyncio.gather(held, waiting)
        finally:
            await batcher.stop()

    asyncio.run(scenario())


def test_a_full_queue_is_a_503_over_http():
    gate = threading.Event()
    scorer = FakeScorer()
    settings = ServeSettings(max_batch=1, batch_wait_ms=0, max_queue=1)
    with serving(scorer, settings) as client:
        scorer.gate = gate  # from now on scoring waits for the gate
        statuses: list[int] = []

        def post() -> None:
            statuses.append(client.post("/score", files=files(uniform(5)[0, 0])).status_code)

        held = [threading.Thread(target=post) for _ in range(2)]  # one scoring, one waiting
        for thread in held:
            thread.start()
            time.sleep(0.3)
        refused = client.post("/score", files=files(uniform(5)[0, 0]))
        gate.set()
        for thread in held:
            thread.join(30)
    assert refused.status_code == 503 and refused.json()["error"] == "busy"
    assert refused.headers["retry-after"] == "1"
    assert statuses == [200, 200]


def test_two_concurrent_requests_share_a_batch_over_http():
    scorer = FakeScorer()
    settings = ServeSettings(max_batch=32, batch_wait_ms=1000)  # a batch waits for the other
    with serving(scorer, settings) as client:
        scorer.batches.clear()
        responses: dict[int, Any] = {}

        def post(value: int, n: int) -> None:
            images = [uniform(value)[0, 0]] * n
            responses[value] = client.post("/score", files=files(*images))

        threads = [threading.Thread(target=post, args=a) for a in ((40, 2), (200, 3))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        metrics = client.get("/metrics").text
    assert scorer.batches == [5]
    assert 'anomalia_batch_images_bucket{le="4.0"} 0.0' in metrics
    assert 'anomalia_batch_images_bucket{le="8.0"} 1.0' in metrics
    for value, n in ((40, 2), (200, 3)):
        assert responses[value].status_code == 200
        results = responses[value].json()["results"]
        assert [r["score"] for r in results] == pytest.approx([value / 255] * n)
        assert [r["is_anomaly"] for r in results] == [value / 255 >= 0.5] * n


# ------------------------------------------------------------------------------ hostile input
def _multipart(parts: list[tuple[str | None, bytes, str]], boundary: str = "b0undary") -> bytes:
    """A multipart/form-data body: a file field per (name, data, content type); a part without
    a name is a plain form field."""
    lines = []
    for name, data, kind in parts:
        head = 'name="files"' + (f'; filename="{name}"' if name else "")
        lines += [
            f"--{boundary}\r\nContent-Disposition: form-data; {head}\r\n".encode(),
            f"Content-Type: {kind}\r\n\r\n".encode() if kind else b"\r\n",
            data,
            b"\r\n",
        ]
    return b"".join([*lines, f"--{boundary}--\r\n".encode()])


def _hostile_requests() -> dict[str, tuple[dict[str, Any], int, str, str]]:
    """name -> (request arguments, status, error code, words in the message)."""
    good = png(normal_and_anomalous(1)[0][0])
    gray = np.zeros((200, 200), np.uint8)
    form = {"content-type": "multipart/form-data; boundary=b0undary"}

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"\0" * 1000

    return {
        "not an image": (
            {"content": b"hello, world", "headers": {"content-type": "image/png"}},
            415,
            "unsupported_format",
            "not a PNG, JPEG, BMP or TIFF",
        ),
        "truncated": (
            {"files": [("files", ("cut.png", good[: len(good) // 2], "image/png"))]},
            400,
            "bad_image",
            "image 0 (cut.png)",
        ),
        "empty body": (
            {"content": b"", "headers": {"content-type": "image/png"}},
            400,
            "empty_request",
            "empty",
        ),
        "wrong content type": (
            {"content": good, "headers": {"content-type": "application/json"}},
            415,
            "unsupported_content_type",
            "'application/json'",
        ),
        "no content type": ({"content": good}, 415, "unsupported_content_type", "none"),
        "text part": (
            {"content": _multipart([("a.txt", b"hi", "text/plain")]), "headers": form},
            415,
            "unsupported_content_type",
            "'text/plain'",
        ),
        "gif": (
            {"files": [("files", ("a.gif", encoded(Image.new("L", (8, 8)), "GIF"), "image/gif"))]},
            415,
            "unsupported_content_type",
            "image/gif",
        ),
        "huge declared body": (
            {"content": good * 400, "headers": {"content-type": "image/png"}},
            413,
            "request_too_large",
            "--max-request-bytes",
        ),
        "huge streamed body": (
            {"content": chunks(), "headers": {"content-type": "image/png"}},
            413,
            "request_too_large",
            "request is larger than the limit of 4000 bytes",
        ),
        "too many pixels": (
            {"files": [("files", ("big.png", png(gray), "image/png"))]},
            413,
            "image_too_large",
            "200x200",
        ),
        "too many images": (
            {"files": [("files", (f"{i}.png", good, "image/png")) for i in range(5)]},
            413,
            "too_many_images",
            "more than 4 images",
        ),
        "far too many images": (
            {"files": [("files", (f"{i}.png", b"x", "image/png")) for i in range(20)]},
            413,
            "too_many_images",
            "more than 4 images",
        ),
        "unconvertible mode": (
            {"files": [("files", ("lab.tif", encoded(Image.new("LAB", (8, 8)), "TIFF"), ""))]},
            422,
            "unsupported_mode",
            "mode LAB",
        ),
        "form without files": (
            {"content": _multipart([(None, b"hi", "")]), "headers": form},
            400,
            "no_images",
            "no files",
        ),
        "broken multipart": (
            {"content": b"--nope\r\ngarbage", "headers": form},
            400,
            "bad_form",
            "unreadable multipart",
        ),
        "bad maps value": (
            {"params": {"maps": "maybe"}, "files": [("files", ("a.png", good, "image/png"))]},
            422,
            "bad_parameter",
            "maps",
        ),
    }


@pytest.mark.parametrize("case", sorted(_hostile_requests()))
def test_bad_input_gets_a_4xx_naming_it_and_the_next_request_succeeds(case, run_dir):
    settings = ServeSettings(
        max_request_bytes=4000, max_images_per_request=4, max_image_pixels=9999
    )
    request, status, code, words = _hostile_requests()[case]
    with serving(load_scorer(run_dir, "cpu"), settings) as client:
        response = client.post("/score", **request)
        assert response.status_code == status, response.text
        assert response.json()["error"] == code
        assert words in response.json()["message"]
        after = client.post("/score", files=files(normal_and_anomalous(1)[0][0]))
        assert after.status_code == 200 and len(after.json()["results"]) == 1


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/nope").json()["error"] == "not_found"
    response = client.get("/score")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


# ------------------------------------------------------------------------------------ API key
def test_the_api_key_protects_score_only():
    with serving(FakeScorer(), ServeSettings(api_key="s3cret")) as client:
        image = files(uniform(9)[0, 0])
        assert client.get("/ready").json()["api_key_required"] is True
        missing = client.post("/score", files=image)
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/score", files=image, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bearer = client.post("/score", files=image, headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        assert (
            client.post("/score", files=image, headers={"X-API-Key": "s3cret"}).status_code == 200
        )
        assert client.get("/health").status_code == 200 and client.get("/").status_code == 200


def test_cli_flags_and_the_key_from_the_environment(monkeypatch, run_dir):
    seen: dict[str, Any] = {}

    def fake_run_server(model: Any, settings: ServeSettings, **options: Any) -> None:
        seen.update(model=model, settings=settings, **options)

    monkeypatch.setattr("anomalia.serve.server.run_server", fake_run_server)
    monkeypatch.setenv("ANOMALIA_API_KEY", "from-env")
    flags = ["--max-batch", "8", "--workers", "2", "--max-request-bytes", "1000", "--port", "9"]
    flags += ["--threads", "1"]
    assert main(["serve", str(run_dir), *flags]) == 0
    settings = seen["settings"]
    assert (settings.max_batch, settings.n_workers, settings.max_request_bytes) == (8, 2, 1000)
    assert settings.api_key == "from-env"
    assert (seen["host"], seen["port"], seen["n_threads"]) == ("127.0.0.1", 9, 1)
    assert main(["serve", str(run_dir), "--api-key", "flag"]) == 0
    assert seen["settings"].api_key == "flag"


def test_cli_errors_name_the_problem(monkeypatch, tmp_path, capsys, run_dir):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["serve", str(tmp_path)]) == 2
    assert "model.pt is missing" in capsys.readouterr().err
    assert main(["serve", str(run_dir), "--max-batch", "0"]) == 2
    assert "max_batch must be a positive integer, got 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the extra were not installed
    assert main(["serve", str(run_dir)]) == 2
    assert "pip install 'anomalia[serve]'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- ONNX path
@pytest.fixture(scope="module")
def onnx_model(run_dir) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    assert main(["export", str(run_dir)]) == 0
    return run_dir / "model.onnx"


def test_the_onnx_model_serves_the_same_scores(onnx_model, detector):
    scorer = load_scorer(onnx_model, n_threads=1)
    assert scorer.info.source == "onnx" and scorer.info.run == "knn-tiny"
    assert scorer.info.method == "knn"
    assert scorer.info.threshold == pytest.approx(detector.threshold_)
    normal, anomalous = normal_and_anomalous()
    with serving(scorer) as client:
        body = client.post("/score", files=files(*normal, *anomalous)).json()
    expected = detector.decision_function(np.r_[normal, anomalous][:, None])
    scores = np.array([r["score"] for r in body["results"]])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert [r["is_anomaly"] for r in body["results"]] == (scores >= scorer.info.threshold).tolist()
    if scorer.info.has_maps:  # the export has a maps output
        with serving(scorer) as client:
            response = client.post("/score?maps=1", files=files(normal[0]))
        assert response.status_code == 200
        expected_map = detector.anomaly_maps(normal[:1, None])[0]
        anomaly_map = response.json()["results"][0]["anomaly_map"]
        assert anomaly_map["max"] == pytest.approx(float(expected_map.max()), rel=1e-4)


def test_the_onnx_path_never_imports_torch(onnx_model):
    script = f"""
import io, sys
import numpy as np
from PIL import Image
from fastapi.testclient import TestClient
import anomalia.cli
from anomalia.serve import load_scorer
from anomalia.serve.app import create_app
from anomalia.serve.scorers import check_model_path
from anomalia.serve.server import check_serve_extra
check_serve_extra()
check_model_path({str(onnx_model)!r})
buffer = io.BytesIO()
Image.fromarray(np.zeros((16, 16), np.uint8)).save(buffer, format="PNG")
with TestClient(create_app(load_scorer({str(onnx_model)!r}))) as client:
    for _ in range(1000):
        if client.get("/ready").status_code == 200:
            break
    response = client.post("/score", files={{"files": ("a.png", buffer.getvalue(), "image/png")}})
    assert response.status_code == 200, response.text
print("torch imported:", "torch" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout


# -------------------------------------------------------------------------- a real server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def server(run_dir) -> Iterator[str]:
    """``anomalia serve RUN_DIR`` in its own process on 127.0.0.1 and a free port; stopped by its
    process id at the end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "anomalia.cli", "serve", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANOMALIA_API_KEY": ""},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if http("GET", f"{url}/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready in 120 s"
            time.sleep(0.2)
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
        assert process.stdout is not None
        process.stdout.close()


def test_a_real_server_scores_and_survives_bad_requests(server, detector):
    normal, anomalous = normal_and_anomalous(1)
    parts = [("a.png", png(normal[0]), "image/png"), ("b.png", png(anomalous[0]), "image/png")]
    form = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    for _ in range(3):
        bad = http("POST", f"{server}/score", b"\x89PNG broken", {"Content-Type": "image/png"})
        assert bad[0] == 415 and json.loads(bad[1])["error"] == "unsupported_format"
        huge = http("POST", f"{server}/score", b"\0" * (17 * 2**20), {"Content-Type": "image/png"})
        assert huge[0] == 413
        status, body = http("POST", f"{server}/score", _multipart(parts), form)
        assert status == 200
        scores = [r["score"] for r in json.loads(body)["results"]]
        expected = detector.decision_function(np.stack([normal, anomalous]))
        np.testing.assert_allclose(scores, expected, rtol=1e-6)
    status, metrics = http("GET", f"{server}/metrics")
    assert status == 200 and b'anomalia_requests_total{code="413",endpoint="/score"} 3.0' in metrics


# ----------------------------------------------------------------------------- the web page
# Puts the pipe ends given as argv[1] and argv[2] on fds 3 and 4, then becomes argv[3:].
_ON_FDS_3_AND_4 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _fd_from_10(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    """Headless Chromium driven through the DevTools protocol over a pipe
    (``--remote-debugging-pipe``: commands on the browser's fd 3, replies on its fd 4, each a
    JSON message ended by a NUL byte)."""

    def __init__(self, user_data_dir: Path) -> None:
        self.log_path = user_data_dir.with_name("chromium.log")
        self._log = self.log_path.open("wb")
        # Numbered 10 and up, so that putting them on 3 and 4 cannot overwrite one of them.
        to_browser, self._to_browser = (_fd_from_10(fd) for fd in os.pipe())
        self._from_browser, from_browser = (_fd_from_10(fd) for fd in os.pipe())
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={user_data_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ON_FDS_3_AND_4, str(to_browser), str(from_browser), *args],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._last_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._from_browser], [], [], left)[0]:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    raise ConnectionError(f"Chromium closed the pipe; its log ends:\n{tail}")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    def evaluate(self, expression: str, session: str) -> Any:
        reply = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return reply["result"].get("value")

    def close(self) -> None:
        with suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close")
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(15)
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._log.close()


def wait_for(browser: Chromium, session: str, expression: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := browser.evaluate(expression, session)):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)
    return value


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_the_page_scores_a_picked_file_in_chromium(server, detector, tmp_path):
    normal, anomalous = normal_and_anomalous(1)
    picked = []
    for name, image in (("normal.png", normal[0]), ("anomalous.png", anomalous[0])):
        (tmp_path / name).write_bytes(png(image))
        picked.append(str(tmp_path / name))
    expected = detector.decision_function(np.stack([normal, anomalous]))
    browser = Chromium(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "DOM"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": f"{server}/"}, session)
        wait_for(browser, session, "document.getElementById('status').dataset.state === 'idle'")
        assert "knn" in browser.evaluate("document.getElementById('model').textContent", session)
        # Pick the files as a user would: set them on the file input, which fires its change.
        document = browser.send("DOM.getDocument", session=session)["root"]["nodeId"]
        node = browser.send(
            "DOM.querySelector", {"nodeId": document, "selector": "#files"}, session
        )
        browser.send("DOM.setFileInputFiles", {"files": picked, "nodeId": node["nodeId"]}, session)
        wait_for(browser, session, "document.getElementById('status').dataset.state === 'done'")
        wait_for(browser, session, "Array.from(document.images).every(i => i.complete)")
        rows = browser.evaluate(
            "Array.from(document.querySelectorAll('#results tbody tr')).map(r => ({"
            "  verdict: r.dataset.verdict, cells: Array.from(r.cells).map(c => c.textContent),"
            "  images: Array.from(r.querySelectorAll('img')).map(i => i.complete && i.naturalWidth)"
            "}))",
            session,
        )
        errors = [
            e
            for e in browser.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ]
    finally:
        browser.close()
    by_name = {row["cells"][1]: row for row in rows}
    assert set(by_name) == {"normal.png", "anomalous.png"}
    for name, score in zip(("normal.png", "anomalous.png"), expected, strict=True):
        row = by_name[name]
        assert float(row["cells"][2]) == pytest.approx(score, rel=1e-4)
        verdict = "anomaly" if score >= detector.threshold_ else "normal"
        assert row["verdict"] == verdict and row["cells"][3] == verdict
        has_maps = METHODS["knn"].has_maps and hasattr(Detector, "anomaly_maps")
        assert len(row["images"]) == (2 if has_maps else 1) and all(row["images"])  # decoded
    assert by_name["anomalous.png"]["verdict"] == "anomaly"
    assert errors == []


def test_binding_beyond_loopback_warns(monkeypatch, capsys, run_dir):
    import uvicorn

    from anomalia.serve.server import run_server

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    run_server(run_dir, ServeSettings(), host="127.0.0.1", port=8123)
    assert "warning" not in capsys.readouterr().err
    run_server(run_dir, ServeSettings(), host="0.0.0.0", port=8123)
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0, reachable from other machines" in err
    assert "--api-key" in err
    assert [(c["host"], c["port"]) for c in calls] == [("127.0.0.1", 8123), ("0.0.0.0", 8123)]

"""Hostile requests against ``anomalia serve``, each followed by a good one, on loopback only.

Starts ``anomalia serve MODEL`` on 127.0.0.1 and a free port with an API key (from the
environment, so it stays out of the process list), sends each bad request, then a good request
(one Fashion-MNIST image, with the key), and prints a Markdown table: the case, the status and
error message it got, and the good request's status. Ends with the server's RSS and whether it
is still alive, and stops it by its process id.

    python benchmarks/serve_hostile.py /tmp/serve-runs/knn/fashion_mnist/class0/knn0
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from serve_load import BOUNDARY, Server, multipart, request, rss_mib, test_images

KEY = "hostile-test-key"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def raw(
    url: str,
    body: bytes | Iterator[bytes],
    headers: dict[str, str],
    path: str = "/score",
    method: str = "POST",
) -> tuple[int | str, str]:
    """(status, error message) of one request; a connection error is reported as its name."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        if isinstance(body, bytes):
            connection.request(method, path, body, headers)
        else:  # chunked, no Content-Length
            connection.request(method, path, body, headers, encode_chunked=True)
        response = connection.getresponse()
        payload = response.read()
    except (OSError, http.client.HTTPException) as err:
        return type(err).__name__, str(err)
    finally:
        connection.close()
    try:
        message = json.loads(payload).get("message", "")
    except ValueError:
        message = payload[:120].decode(errors="replace")
    return response.status, str(message)


def cases(good: bytes) -> list[tuple[str, bytes | Iterator[bytes], dict[str, str], str]]:
    """(case, body, headers, path) of every hostile request."""
    key = {"Authorization": f"Bearer {KEY}"}
    form = {**key, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    as_png = {**key, "Content-Type": "image/png"}

    def stream(n_chunks: int) -> Iterator[bytes]:
        for _ in range(n_chunks):
            yield b"\0" * 2**20

    def part(name: str, data: bytes, kind: str) -> bytes:
        disposition = f'form-data; name="files"; filename="{name}"'
        return (
            (
                f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: {kind}\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        )

    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    wide16 = Image.fromarray((np.linspace(0, 65535, 28 * 28).reshape(28, 28)).astype(np.uint16))
    return [
        ("no API key", good, {"Content-Type": "image/png"}, "/score"),
        ("wrong API key", good, {"Content-Type": "image/png", "X-API-Key": "guess"}, "/score"),
        ("text sent as image/png", b"hello, world", as_png, "/score"),
        (
            "truncated PNG (first half)",
            encoded(Image.fromarray(noise), "PNG")[:300],
            as_png,
            "/score",
        ),
        ("empty body", b"", as_png, "/score"),
        ("JSON body", b'{"image": "x"}', {**key, "Content-Type": "application/json"}, "/score"),
        ("no content type", good, key, "/score"),
        ("GIF image", encoded(Image.fromarray(noise), "GIF"), as_png, "/score"),
        ("text file in a form", part("a.txt", b"hi", "text/plain"), form, "/score"),
        ("LAB-mode TIFF", encoded(Image.new("LAB", (8, 8)), "TIFF"), as_png, "/score"),
        ("PNG header claiming 50000 x 50000", png_header_only(50000, 50000), as_png, "/score"),
        (
            "real 6000 x 6000 PNG (36 M pixels)",
            encoded(Image.new("L", (6000, 6000)), "PNG"),
            as_png,
            "/score",
        ),
        ("17 MiB body (Content-Length)", b"\0" * (17 * 2**20), as_png, "/score"),
        ("20 MiB body, chunked", stream(20), as_png, "/score"),
        ("80 MiB body (over 4x the limit)", b"\0" * (80 * 2**20), as_png, "/score"),
        ("65 images in one form", multipart([good] * 65), form, "/score"),
        ("form without files", f"--{BOUNDARY}--\r\n".encode(), form, "/score"),
        ("broken multipart", b"--nope\r\ngarbage", form, "/score"),
        ("maps=banana", good, as_png, "/score?maps=banana"),
        ("64 KiB header", good, {**as_png, "X-Junk": "x" * 65536}, "/score"),
        ("path traversal", b"", key, "/../../etc/passwd"),
        (
            "1 x 60000 strip (accepted: resized)",
            encoded(Image.new("L", (1, 60000)), "PNG"),
            as_png,
            "/score",
        ),
        ("16-bit PNG (accepted: scaled)", encoded(wide16, "PNG"), as_png, "/score"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="run directory or model.onnx to serve")
    parser.add_argument(
        "--rounds", type=int, default=3, help="times every case is sent (the table shows the first)"
    )
    args = parser.parse_args(argv)
    good = test_images(1)[0]
    good_headers = {"Content-Type": "image/png", "Authorization": f"Bearer {KEY}"}
    server = Server(args.model, [], env={"ANOMALIA_API_KEY": KEY})
    n_sent = n_good = 0
    rss = [rss_mib(server.pid)]
    try:
        print("| bad request | status | error message | good request after it |")
        print("| --- | --- | --- | --- |")
        for round_number in range(args.rounds):
            for name, body, headers, path in cases(good):  # fresh bodies (one is a generator)
                method = "GET" if path.startswith("/..") else "POST"
                status, message = raw(server.url, body, headers, path, method)
                after, after_message = raw(server.url, good, good_headers)
                n_sent += 1
                n_good += after == 200
                if round_number == 0:
                    shown = message.replace("|", "\\|").replace("\n", " ")
                    shown = shown if len(shown) <= 160 else shown[:157] + "..."
                    followed = "200" if after == 200 else f"{after} {after_message}"
                    print(f"| {name} | {status} | {shown} | {followed} |")
            rss.append(rss_mib(server.pid))
        time.sleep(0.5)
        metrics = request(server.url, "GET", "/metrics")[1].decode()
        errors = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("anomalia_request_errors_total{")
        )
        alive = server.alive()
    finally:
        server.stop()
    print(
        f"\n{args.rounds} rounds: {n_good}/{n_sent} good requests after a bad one succeeded; "
        f"server alive at the end: {alive}; errors counted in /metrics: {errors:.0f}; "
        f"server RSS (MiB) at the start and after each round: "
        + ", ".join(f"{value:.0f}" for value in rss)
    )
    return 0 if alive and n_good == n_sent else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())

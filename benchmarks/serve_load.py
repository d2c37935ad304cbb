"""A bounded load test of ``anomalia serve``, on loopback only.

Starts ``anomalia serve MODEL --max-batch B`` on 127.0.0.1 and a free port (or uses ``--url``,
which must be a loopback address), sends ``--requests`` POST /score requests from ``--clients``
threads (each its own keep-alive connection, one Fashion-MNIST test image of any class per
request unless ``--images-per-request`` says more), and prints one Markdown row: requests that
succeeded and failed, latency p50 / p99, throughput, the mean batch the server formed (from its
/metrics), the server's CPU time per image (which, unlike latency and throughput, hardly depends
on what else the machine runs), the 1-minute load average before and after, and the server's
resident memory (RSS) sampled every 0.25 s after a warm-up. A run
stops after ``--max-seconds`` whatever is left; the server it started is stopped by its process
id at the end.

    python benchmarks/serve_load.py /tmp/serve-runs/knn/fashion_mnist/class0/knn0 --max-batch 32
    python benchmarks/serve_load.py RUN_DIR --max-batch 1 --clients 32 --requests 4000
    python benchmarks/serve_load.py --header          # the table's header row
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BOUNDARY = "anomalia-load-test"
COLUMNS = (
    "model", "max batch", "threads", "clients", "requests", "ok", "failed", "p50 ms", "p99 ms",
    "requests/s", "images/s", "mean batch", "server CPU ms/image", "load avg",
    "RSS after warm-up MiB", "RSS min-max during MiB",
)  # fmt: skip
HEADER = (
    "| "
    + " | ".join(COLUMNS)
    + " |\n|"
    + "|".join(
        " --- " if name in ("model", "load avg", "RSS min-max during MiB") else " ---: "
        for name in COLUMNS
    )
    + "|"
)


# -------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Server:
    """``anomalia serve MODEL ARGS`` on 127.0.0.1 and a free port, stopped by its pid."""

    def __init__(self, model: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        anomalia = Path(sys.executable).with_name("anomalia")
        command = [str(anomalia), "serve", model, "--port", str(self.port), *args]
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if request(self.url, "GET", "/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not get ready in 120 s")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self.log.close()


# ------------------------------------------------------------------------------ requests
def test_images(n: int, seed: int = 0) -> list[bytes]:
    """``n`` Fashion-MNIST test images of all classes as PNG files (random noise when the data
    is not installed)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    try:
        from anomalia.data import load_dataset

        images = load_dataset("fashion_mnist").test_images[:, 0]  # (N, 28, 28) uint8
        picked = images[rng.choice(len(images), n, replace=False)]
    except Exception as err:  # no data: the service's speed does not depend on the pixels
        print(f"(no Fashion-MNIST: {err}; using noise)", file=sys.stderr)
        picked = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    out = []
    for pixels in picked:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def multipart(images: list[bytes]) -> bytes:
    parts = []
    for i, data in enumerate(images):
        parts += [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{i}.png"'
            "\r\nContent-Type: image/png\r\n\r\n".encode(),
            data,
            b"\r\n",
        ]
    return b"".join([*parts, f"--{BOUNDARY}--\r\n".encode()])


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def run_load(
    url: str,
    bodies: list[bytes],
    n_clients: int,
    n_requests: int,
    max_seconds: float,
    api_key: str | None,
) -> tuple[list[float], int, float]:
    """(latencies in s of the requests that succeeded, failed count, wall seconds)."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + max_seconds

    def client(index: int) -> None:
        nonlocal issued
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= n_requests:
                        return
                    number = issued
                    issued += 1
                body = bodies[number % len(bodies)]
                start = time.perf_counter()
                try:
                    connection.request("POST", "/score", body, headers)
                    response = connection.getresponse()
                    payload = response.read()
                    ok = response.status == 200 and b'"results"' in payload
                    problem = f"{response.status} {payload[:200]!r}"
                except (OSError, http.client.HTTPException) as err:
                    ok, problem = False, repr(err)
                    connection.close()
                    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                elapsed = time.perf_counter() - start
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        failures.append(problem)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for problem in failures[:5]:
        print(f"failed: {problem}", file=sys.stderr)
    return latencies, len(failures), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="run directory or model.onnx to serve")
    parser.add_argument("--url", help="use a running server instead (loopback addresses only)")
    parser.add_argument("--max-batch", type=int, default=32, help="server --max-batch")
    parser.add_argument("--workers", type=int, default=1, help="server --workers")
    parser.add_argument("--threads", type=int, help="server --threads (default: its default)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=3000, help="requests measured")
    parser.add_argument("--warmup", type=int, default=200, help="requests before measuring")
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=120, help="stop after this long")
    parser.add_argument("--header", action="store_true", help="print the header row and exit")
    args = parser.parse_args(argv)
    if args.header:
        print(HEADER)
        return 0
    if (args.model is None) == (args.url is None):
        parser.error("give MODEL (a server is started) or --url (a running server)")
    if args.url and urllib.parse.urlsplit(args.url).hostname not in LOOPBACK:
        parser.error(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))})")
    if not (1 <= args.clients <= 256 and 1 <= args.requests <= 100_000):
        parser.error("--clients must lie in [1, 256] and --requests in [1, 100000]")

    server = None
    if args.model:
        flags = ["--max-batch", str(args.max_batch), "--workers", str(args.workers)]
        flags += ["--threads", str(args.threads)] if args.threads else []
        server = Server(args.model, flags)
    url = server.url if server else args.url
    try:
        images = test_images(256)
        n = args.images_per_request
        bodies = [multipart(images[i : i + n]) for i in range(0, len(images) - n + 1, n)]
        run_load(url, bodies, args.clients, args.warmup, args.max_seconds, None)
        before = request(url, "GET", "/metrics")[1].decode()
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss_mib(server.pid))  # type: ignore[union-attr]
                stop.wait(0.25)

        sampler = threading.Thread(target=sample) if server else None
        if sampler:
            sampler.start()
        cpu_before = cpu_seconds(server.pid) if server else float("nan")
        load_before = os.getloadavg()[0]
        latencies, n_failed, wall = run_load(
            url, bodies, args.clients, args.requests, args.max_seconds, None
        )
        cpu = (cpu_seconds(server.pid) if server else float("nan")) - cpu_before
        load_after = os.getloadavg()[0]
        stop.set()
        if sampler:
            sampler.join()
        after = request(url, "GET", "/metrics")[1].decode()
        alive = server.alive() if server else True
    finally:
        if server:
            server.stop()
    batches = metric(after, "anomalia_batch_images_count") - metric(
        before, "anomalia_batch_images_count"
    )
    batched = metric(after, "anomalia_batch_images_sum") - metric(
        before, "anomalia_batch_images_sum"
    )
    p50, p99 = (np.percentile(latencies, [50, 99]) * 1000) if latencies else (float("nan"),) * 2
    model = Path(args.model).name if args.model else url
    rss = f"{samples[0]:.0f}" if samples else "-"
    rss_range = f"{min(samples):.0f}-{max(samples):.0f}" if samples else "-"
    print(
        f"| {model} | {args.max_batch} | {args.threads or 'default'} | {args.clients} "
        f"| {len(latencies) + n_failed} "
        f"| {len(latencies)} | {n_failed} | {p50:.1f} | {p99:.1f} | {len(latencies) / wall:.0f} "
        f"| {len(latencies) * args.images_per_request / wall:.0f} "
        f"| {batched / batches if batches else 0:.1f} "
        f"| {1000 * cpu / max(1, len(latencies) * args.images_per_request):.2f} "
        f"| {load_before:.1f}-{load_after:.1f} | {rss} | {rss_range} |"
    )
    if samples:
        step = max(1, len(samples) // 12)
        shown = ", ".join(f"{s:.0f}" for s in samples[::step])
        print(f"RSS MiB every {0.25 * step:g} s: {shown}", file=sys.stderr)
    print(json.dumps({"server_alive_at_end": alive, "wall_s": round(wall, 1)}), file=sys.stderr)
    return 0 if n_failed == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())

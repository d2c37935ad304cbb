"""Wall time of one benchmark grid with the local executor and through Ray on a two-node cluster.

Both run the same grid on this machine with two cells at once: ``--executor local --jobs 2``,
then ``--executor ray`` on a Ray cluster of two nodes with one CPU each (a head and a worker
node on 127.0.0.1, started and stopped here). Every cell is trained in both (two separate
benchmark directories), and the two ``results.csv`` files must hold the same metrics.

    python benchmarks/ray_vs_local.py configs/benchmarks/deep-sad-knn.yaml --out /tmp/ray-vs-local
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

METRICS = ("auroc", "auprc", "f1", "mean_score_normal", "mean_score_anomaly")


def write_grid(grid: dict, name: str, out: Path) -> Path:
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**grid, "name": name, "output_dir": str(out)}))
    return path


def timed(command: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(f"{' '.join(command)} failed with exit code {code}; see {log}")
    return time.perf_counter() - start


def metrics(path: Path) -> dict[str, tuple[str, ...]]:
    with path.open(newline="") as handle:
        return {row["cell"]: tuple(row[m] for m in METRICS) for row in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="a new, empty directory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = yaml.safe_load(args.grid.read_text())
    anomalia = [sys.executable, "-m", "anomalia.cli", "benchmark"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    local = write_grid(grid, "local", args.out)
    local_seconds = timed([*anomalia, str(local), "--jobs", "2"], env, args.out / "local.log")
    print(f"local --jobs 2: {local_seconds:.0f} s", flush=True)

    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    node = {"node_ip_address": "127.0.0.1", "num_cpus": 1}
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    cluster_seconds = time.perf_counter() - start
    try:
        ray = write_grid(grid, "ray", args.out)
        # Ray on Linux turns a loopback address into the network address before it connects;
        # its single-machine mode keeps loopback, where this cluster listens.
        ray_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        command = [*anomalia, str(ray), "--executor", "ray", "--address", cluster.address]
        ray_seconds = timed(command, ray_env, args.out / "ray.log")
    finally:
        cluster.shutdown()
    print(f"ray, two nodes: {ray_seconds:.0f} s (+ {cluster_seconds:.0f} s to start the cluster)")

    a, b = metrics(args.out / "local" / "results.csv"), metrics(args.out / "ray" / "results.csv")
    same = sum(a[k] == b.get(k) for k in a)
    print(f"cells: {len(a)} local, {len(b)} ray; identical metrics in {same}")
    print(f"ray / local wall time: {ray_seconds / local_seconds:.3f}")


if __name__ == "__main__":
    main()

"""The ``anomalia`` command line: parses arguments, builds a config, calls the library.

``main(argv)`` returns an exit code and is callable from tests: 0 success, 1 a check failed
(``evaluate`` could not reproduce the saved metrics), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from anomalia import __version__
from anomalia.errors import AnomaliaError, ConfigError

# flag destination -> dotted config key (only flags the user gave override the config file)
_FLAG_KEYS = {
    "method": "method",
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "normal_class": "data.normal_class",
    "anomaly_ratio": "data.anomaly_ratio",
    "anomaly_classes": "data.anomaly_classes",
    "n_known_anomaly_classes": "data.n_known_anomaly_classes",
    "pollution": "data.pollution",
    "val_fraction": "data.val_fraction",
    "image_size": "data.image_size",
    "skip_bad_images": "data.skip_bad_images",
    "download": "data.download",
    "batch_size": "train.batch_size",
    "n_epochs": "train.n_epochs",
    "lr": "train.lr",
    "normal_fraction": "train.normal_fraction",
    "seed": "train.seed",
    "accelerator": "train.accelerator",
    "devices": "train.devices",
    "strategy": "train.strategy",
    "num_nodes": "train.num_nodes",
    "precision": "train.precision",
    "num_workers": "train.num_workers",
    "deterministic": "train.deterministic",
    "progress_bar": "train.progress_bar",
    "loss": "model.error",
    "latent_dim": "model.latent_dim",
    "output_dir": "output_dir",
    "name": "name",
    "plots": "plots",
}


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment")
    g.add_argument("--config", metavar="FILE", help="YAML config file; flags override its keys")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint, with its saved "
        "config (no other experiment flags)",
    )
    g.add_argument("--method", help="detector to train (see `anomalia list`); default autoencoder")
    g.add_argument("--normal-class", type=int, help="class treated as normal (default 0)")
    g.add_argument(
        "--anomaly-ratio",
        type=float,
        help="gamma_l: share of labelled anomalies in the training set, in [0, 1) (default 0.05)",
    )
    g.add_argument(
        "--anomaly-classes",
        type=_int_list,
        metavar="C,C,...",
        help="classes labelled anomalies come from (default: all but the normal class)",
    )
    g.add_argument(
        "--n-known-anomaly-classes",
        type=int,
        metavar="K",
        help="pick K of the anomaly classes at random (1 = Deep SAD's k_l = 1 scenario)",
    )
    g.add_argument(
        "--pollution",
        type=float,
        help="gamma_p: share of unlabelled anomalies among unlabelled training images (default 0)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        help="share of training images held out for validation (default 0.1)",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        help="fashion_mnist (default), mnist, cifar10, or your own data in --data-dir: mvtec "
        "(MVTec AD layout), folder (normal/ + anomaly/) or idx (four IDX files)",
    )
    g.add_argument(
        "--image-size",
        type=int,
        help="resize your own images to this square size (folder datasets)",
    )
    g.add_argument(
        "--skip-bad-images",
        action="store_const",
        const=True,
        help="skip unreadable image files and list them in skipped_images.txt",
    )
    g.add_argument(
        "--data-dir", metavar="DIR", help="directory searched first for the dataset files"
    )
    g.add_argument(
        "--no-download",
        dest="download",
        action="store_const",
        const=False,
        help="never download; fail if no local copy is found",
    )
    g = p.add_argument_group("training (defaults: the study's settings)")
    g.add_argument("--batch-size", type=int, help="images per batch (default 32)")
    g.add_argument("--n-epochs", type=int, help="epochs (default 15)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    g.add_argument(
        "--loss",
        choices=["mse", "l1"],
        help="reconstruction error for loss and score (default mse)",
    )
    g.add_argument("--latent-dim", type=int, help="autoencoder bottleneck size (default 32)")
    g.add_argument(
        "--normal-fraction",
        type=float,
        help="share of normal images in each balanced batch (default 0.5)",
    )
    g.add_argument("--seed", type=int, help="seeds split, weights and batches (default 0)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set model.abc_weight=0.1 (repeatable)",
    )
    g = p.add_argument_group("hardware (passed to Lightning)")
    g.add_argument("--accelerator", help="auto (default), cpu, gpu, mps, ...")
    g.add_argument("--devices", type=_devices, help="number or list of devices, or auto")
    g.add_argument("--strategy", help="auto, ddp, ddp_spawn, ... (multi-GPU / multi-node)")
    g.add_argument("--num-nodes", type=int, help="machines taking part in DDP training")
    g.add_argument("--precision", help="32-true (default), bf16-mixed, 16-mixed, ...")
    g.add_argument("--num-workers", type=int, help="DataLoader worker processes (default 0)")
    g.add_argument(
        "--deterministic", action="store_const", const=True, help="deterministic kernels"
    )
    g = p.add_argument_group("output")
    g.add_argument("--output-dir", metavar="DIR", help="root of run directories (default runs)")
    g.add_argument("--name", help="run directory name (default: UTC timestamp)")
    g.add_argument(
        "--no-plots", dest="plots", action="store_const", const=False, help="skip PNG plots"
    )
    g.add_argument(
        "--no-progress-bar",
        dest="progress_bar",
        action="store_const",
        const=False,
        help="hide the progress bar",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomalia",
        description="Image anomaly detection when normal images dominate and labelled "
        "anomalies are few.",
    )
    parser.add_argument("--version", action="version", version=f"anomalia {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train, evaluate and write a run directory",
        description="Train a detector on one normal class, evaluate it on the test "
        "set and write a run directory with metrics, scores and plots.",
    )
    _add_train_args(train)
    evaluate = sub.add_parser(
        "evaluate",
        help="re-score a saved run and check its metrics",
        description="Reload RUN_DIR's model and split, re-score the test set and "
        "compare with the saved scores and metrics.",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--accelerator", default="auto", help="device to score on (default auto)")
    download = sub.add_parser("download", help="fetch a dataset into the cache or --data-dir")
    download.add_argument("dataset", help="dataset name, e.g. fashion_mnist")
    download.add_argument(
        "--data-dir", metavar="DIR", help="where to put the files (default: user cache)"
    )
    sub.add_parser("list", help="list methods and datasets")
    predict = sub.add_parser(
        "predict",
        help="score image files with a trained run",
        description="Score image files with RUN_DIR's model: each is converted to the model's "
        "channels and resized to its image size, like the training data; files are read in "
        "batches, so any number works. Writes path,score,is_anomaly rows (is_anomaly: score "
        "above the run's threshold) to RUN_DIR/predictions.csv or --output.",
    )
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument(
        "paths",
        metavar="PATH",
        nargs="+",
        help="image files (PNG, JPEG, BMP, TIFF), directories (searched recursively for "
        "image file names) or quoted glob patterns such as 'photos/**/*.png'",
    )
    predict.add_argument(
        "--output", metavar="FILE", help="CSV to write (default RUN_DIR/predictions.csv)"
    )
    predict.add_argument(
        "--batch-size", type=int, default=64, help="images read and scored at a time (default 64)"
    )
    predict.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable files out (and list them) instead of stopping",
    )
    predict.add_argument("--accelerator", default="auto", help="device to score on (default auto)")
    export = sub.add_parser(
        "export",
        help="export a run's scoring network (ONNX)",
        description="Write RUN_DIR's scoring network as RUN_DIR/model.onnx (or --output): "
        "input 'images', float32 (batch, channels, size, size) in [0, 1]; output 'scores', "
        "higher = more anomalous; the threshold is in the model's metadata. Needs "
        "pip install 'anomalia[export]'.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (default)")
    export.add_argument("--output", metavar="FILE", help="default RUN_DIR/model.onnx")
    bench = sub.add_parser(
        "benchmark",
        help="run a grid of experiments (resumable) and summarise it",
        description="Run every cell of a benchmark grid (methods x gamma_l x k_l x seeds x normal "
        "classes); results.csv gains a row per finished cell, and running the same command again "
        "skips finished cells and resumes interrupted ones. Then writes summary.md/csv and plots "
        "with the matching published numbers. Shipped grids: configs/benchmarks/.",
    )
    bench.add_argument("config", metavar="CONFIG.yaml", help="benchmark grid")
    bench.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells run at once, each in its own process when > 1 (default 1)",
    )
    bench.add_argument(
        "--threads", type=int, help="torch threads per cell process (default: cores / jobs)"
    )
    bench.add_argument(
        "--summary-only", action="store_true", help="only rewrite the summary from results.csv"
    )
    bench.add_argument(
        "--merge",
        nargs="+",
        metavar="RESULTS.csv",
        default=[],
        help="first add the rows of other machines' results.csv files (cells this benchmark "
        "already has are kept as they are)",
    )
    report = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run or benchmark",
        description="Write DIR/report.html (images inlined, no network) for a run "
        "directory or a benchmark directory.",
    )
    report.add_argument("directory", metavar="DIR")
    report.add_argument("--output", metavar="FILE", help="where to write (default DIR/report.html)")
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    """Defaults < config file < flags < --set."""
    from anomalia.config import RunConfig, from_dict, load_yaml, set_dotted

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            set_dotted(data, key, value)
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        set_dotted(data, key.strip(), yaml.safe_load(raw))
    return from_dict(RunConfig, data)


def _cmd_train(args: argparse.Namespace) -> int:
    from anomalia.experiment import resume_experiment, run_experiment
    from anomalia.reporting import metrics_table

    if args.resume:
        given = (
            [k for k in _FLAG_KEYS if getattr(args, k, None) is not None]
            + (["config"] if args.config else [])
            + (["set"] if args.set else [])
        )
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ConfigError(f"--resume uses the run's saved config; drop {flags}")
        result = resume_experiment(args.resume)
    else:
        result = run_experiment(config_from_args(args))
    if not result.metrics:  # an extra DDP process: rank 0 reports
        return 0
    m = result.metrics
    print(
        f"\n{result.config.method}, normal class {result.config.data.normal_class}: "
        f"trained in {m['train_seconds']:.0f} s"
    )
    print(metrics_table(m))
    print(f"\nrun directory: {result.run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from anomalia.experiment import evaluate_run, read_metrics
    from anomalia.reporting import metrics_table

    metrics, diff = evaluate_run(args.run_dir, accelerator=args.accelerator)
    print(metrics_table(metrics))
    saved = read_metrics(args.run_dir)
    same = math.isclose(saved["auroc"], metrics["auroc"], abs_tol=1e-6) and diff <= 1e-5
    print(
        f"\nsaved AUROC {saved['auroc']:.6f}, re-scored {metrics['auroc']:.6f}; "
        f"largest score difference {diff:.3g}: {'reproduced' if same else 'NOT reproduced'}"
    )
    return 0 if same else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from anomalia.reporting.html import write_report

    print(f"report: {write_report(args.directory, args.output)}")
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from anomalia.benchmark import (
        load_benchmark_config,
        merge_results,
        run_benchmark,
        write_summary,
    )

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    config = load_benchmark_config(args.config)
    if args.merge:
        added, skipped = merge_results(config, args.merge)
        print(f"merged {added} row(s); {skipped} cell(s) already present were kept as they were")
    failed: list[str] = []
    if not args.summary_only:
        _, failed = run_benchmark(config, jobs=args.jobs, threads=args.threads)
    summary = write_summary(config)
    print(summary.read_text())
    print(f"results: {config.directory / 'results.csv'}\nsummary: {summary}")
    return 1 if failed else 0


def _cmd_download(args: argparse.Namespace) -> int:
    from anomalia.data import download, get_dataset_spec

    spec = get_dataset_spec(args.dataset)
    target = download(spec, args.data_dir)
    print(f"{spec.name}: files in {target}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from anomalia.experiment import predict_paths

    result = predict_paths(
        args.run_dir,
        args.paths,
        args.output,
        args.batch_size,
        skip_bad_images=args.skip_bad_images,
        accelerator=args.accelerator,
    )
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable file(s):")
        for path in result.skipped[:20]:
            print(f"  {path}")
        if len(result.skipped) > 20:
            print(f"  ... and {len(result.skipped) - 20} more")
    print(
        f"scored {result.n_images} image(s): {result.n_anomalies} flagged as anomalies "
        f"(score > threshold {result.threshold:.6g}, {result.threshold_rule})"
    )
    print(f"predictions: {result.output}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from anomalia.experiment import export_onnx

    print(f"ONNX model: {export_onnx(args.run_dir, args.output)}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from anomalia.data import available_datasets
    from anomalia.models import available_models

    print("methods: " + ", ".join(available_models()))
    print("datasets: " + ", ".join(available_datasets()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {
        "benchmark": _cmd_benchmark,
        "report": _cmd_report,
        "train": _cmd_train,
        "evaluate": _cmd_evaluate,
        "download": _cmd_download,
        "list": _cmd_list,
        "predict": _cmd_predict,
        "export": _cmd_export,
    }[args.command]
    try:
        return command(args)
    except AnomaliaError as err:
        print(f"anomalia: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anomalia: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

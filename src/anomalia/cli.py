"""The ``anomalia`` command line: parses arguments, builds a config, calls the library.

``main(argv)`` returns an exit code and is callable from tests: 0 success, 1 a check failed
(``evaluate`` could not reproduce the saved metrics), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from anomalia import __version__
from anomalia.errors import AnomaliaError, ConfigError


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _int_or_str(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _flag_options(tp: Any) -> dict[str, Any] | None:
    """argparse options for a config field of annotation ``tp`` (None: no flag for it)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if set(args) == {int, str}:
            return {"type": _int_or_str}
        return _flag_options(args[0]) if len(args) == 1 else None
    if origin is typing.Literal:
        return {"choices": list(args)}
    if origin is list:
        (item,) = args
        if typing.get_origin(item) in (typing.Union, types.UnionType):  # int | None -> int
            item = next(a for a in typing.get_args(item) if a is not type(None))
        if typing.get_origin(item) is typing.Literal:
            return {"type": _str_list, "metavar": ",".join(typing.get_args(item))}
        lists = {int: (_int_list, "N,N,..."), float: (_float_list, "X,X"), str: (_str_list, "A,B")}
        return {"type": lists[item][0], "metavar": lists[item][1]} if item in lists else None
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": tp} if tp in (int, float, str) else None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def config_flags() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every ``anomalia train`` flag made from a config field: dotted config key ->
    (argument group, argparse options), with the field's help and its default."""
    from anomalia.config import DataConfig, RunConfig, TrainConfig
    from anomalia.methods import METHODS

    flags: dict[str, tuple[str, dict[str, Any]]] = {}
    sections = (("data", DataConfig), ("train", TrainConfig), ("", RunConfig))
    for section, cls in sections:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            options = _flag_options(hints[f.name]) if "help" in f.metadata else None
            if options is None:
                continue
            key = f"{section}.{f.name}" if section else f.name
            default = f"(default {_shown(_default(f))})"
            flags[key] = (section or "run", {**options, "help": f"{f.metadata['help']} {default}"})
    model_fields: dict[str, list[tuple[str, Any, dataclasses.Field[Any]]]] = {}
    for name, method in sorted(METHODS.items()):
        hints = typing.get_type_hints(method.config_class)
        for f in dataclasses.fields(method.config_class):
            model_fields.setdefault(f.name, []).append((name, hints[f.name], f))
    for field_name, uses in sorted(model_fields.items()):
        options = _flag_options(uses[0][1])
        if options is None:
            continue
        defaults = ", ".join(f"{method} {_shown(_default(f))}" for method, _, f in uses)
        help_text = f"{uses[0][2].metadata['help']} (default: {defaults})"
        flags[f"model.{field_name}"] = ("model", {**options, "help": help_text})
    return flags


_GROUPS = {
    "data": "data and protocol (config section data)",
    "train": "training and hardware (config section train; defaults: the study's settings)",
    "model": "model parameters (config section model; each applies to the methods named)",
    "run": "run",
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment")
    g.add_argument("--config", metavar="FILE", help="YAML config file; flags override its keys")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint, with its saved "
        "config (no other experiment flags)",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set model.abc_weight=0.1 (repeatable)",
    )
    groups = {name: p.add_argument_group(title) for name, title in _GROUPS.items()}
    for key, (group, options) in config_flags().items():
        name = key.rpartition(".")[2]
        if "type" in options:
            options = {"metavar": name.upper(), **options}
        groups[group].add_argument("--" + name.replace("_", "-"), dest=key, **options)


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
    predict.add_argument(
        "--maps",
        metavar="DIR",
        help="also write each image's anomaly-map overlay PNG into DIR (methods with maps, see "
        "`anomalia list`); predictions.csv gains a map column",
    )
    predict.add_argument(
        "--raw-maps", action="store_true", help="with --maps, also write each raw map as .npy"
    )
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
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: this machine, --jobs cells at once (default); ray: each cell a Ray task "
        "on a cluster (pip install 'anomalia[ray]')",
    )
    bench.add_argument(
        "--address",
        help="with --executor ray: the Ray cluster to use (auto: the one this machine joined "
        "with `ray start`); default: a Ray instance on this machine only",
    )
    bench.add_argument(
        "--storage",
        choices=["auto", "shared", "send-back"],
        default="auto",
        help="with --executor ray: shared = every node sees output_dir; send-back = finished "
        "run directories are sent back to this machine; auto = find out per cell (default)",
    )
    bench.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="with --executor ray: restarts of a cell whose worker or node died (default 2)",
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
    tune = sub.add_parser(
        "tune",
        help="search hyperparameters with Ray Tune, choosing on validation data only",
        description="Train one trial per setting of CONFIG's search_space on the training split, "
        "score each on the validation split after every epoch (ASHA stops trials that trail), "
        "choose the best by its last epoch's validation metric, and write "
        "<output_dir>/<name>/trials.csv and best.yaml (a config for anomalia train --config). "
        "Only then is the test set scored, once, for the chosen settings. Shipped searches: "
        "configs/tune/. Needs pip install 'anomalia[ray]'.",
    )
    tune.add_argument("config", metavar="CONFIG.yaml", help="the search (see configs/tune/)")
    tune.add_argument(
        "--address",
        help="the Ray cluster to use (auto: the one this machine joined with `ray start`); "
        "default: a Ray instance on this machine only",
    )
    tune.add_argument(
        "--no-test",
        action="store_true",
        help="stop after the choice: do not train the chosen settings and score the test set",
    )
    tune.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a key of CONFIG, e.g. --set train.n_epochs=5, --set num_samples=4 or "
        "--set 'search_space.train.lr={choice: [0.001, 0.01]}' (repeatable)",
    )
    report = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run or benchmark",
        description="Write DIR/report.html (images inlined, no network) for a run "
        "directory or a benchmark directory.",
    )
    report.add_argument("directory", metavar="DIR")
    report.add_argument("--output", metavar="FILE", help="where to write (default DIR/report.html)")
    serve = sub.add_parser(
        "serve",
        help="serve a trained run or an ONNX model over HTTP",
        description="Score images over HTTP: POST /score (multipart files, or one image as the "
        "body), a page at / to drop images on, /health, /ready, /metrics (Prometheus) and the "
        "OpenAPI docs at /docs. MODEL is a run directory, its model.pt, or a model.onnx written "
        "by anomalia export (served with onnxruntime, without torch). Requests arriving together "
        "are scored in one batch. Needs pip install 'anomalia[serve]'. See docs/serving.md.",
    )
    serve.add_argument("model", metavar="MODEL", help="run directory, model.pt or model.onnx")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; any other address "
        "makes the service reachable from other machines, with a warning)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--max-batch",
        type=int,
        default=32,
        help="images scored together at most; requests arriving together share a batch "
        "(default 32)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="batches scored at once, each in its own thread, with one copy of the model "
        "(default 1)",
    )
    serve.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        help="how long a batch waits for more requests after its first (default 2)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="requests waiting to be scored at most; beyond it /score answers 503 (default 256)",
    )
    serve.add_argument(
        "--max-request-bytes",
        type=int,
        default=16 * 2**20,
        help="largest request body accepted, 413 beyond it (default 16777216 = 16 MiB)",
    )
    serve.add_argument(
        "--max-images-per-request",
        type=int,
        default=64,
        help="most images in one request, 413 beyond it (default 64)",
    )
    serve.add_argument(
        "--max-image-pixels",
        type=int,
        default=25_000_000,
        help="largest image (width x height) decoded, 413 beyond it (default 25000000)",
    )
    serve.add_argument(
        "--api-key",
        help="require this key on /score (Authorization: Bearer KEY or X-API-Key: KEY); "
        "default: $ANOMALIA_API_KEY, else no key. The environment variable keeps the key out "
        "of the process list",
    )
    serve.add_argument(
        "--accelerator", default="auto", help="device to score a run on (default auto)"
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="CPU threads one scoring call uses (torch or onnxruntime; default: one per core). "
        "On a busy or small machine, 1 per worker is often much faster",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default info)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    """Defaults < config file < flags < --set."""
    from anomalia.config import RunConfig, from_dict, load_yaml, set_dotted

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    for key in config_flags():
        value = getattr(args, key, None)
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
            [k.rpartition(".")[2] for k in config_flags() if getattr(args, k, None) is not None]
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
    split = result.run_dir.read_info()["split"]
    rule = (
        "all of them, the default for image folders"
        if result.config.data.resolved_anomaly_ratio is None
        else "data.anomaly_ratio"
    )
    print(
        f"\n{result.config.method}, normal class {result.config.data.normal_class}: "
        f"trained in {m['train_seconds']:.0f} s on {split['train_normal_or_unlabelled']} normal "
        f"or unlabelled images and {split['train_labelled_anomalies']} labelled anomalies "
        f"(gamma_l = {split['anomaly_ratio']:g}; {rule})"
    )
    print(metrics_table(m))
    print(f"\nrun directory: {result.run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from anomalia.experiment import evaluate_run
    from anomalia.reporting import metrics_table
    from anomalia.rundir import RunDir

    metrics, diff = evaluate_run(args.run_dir, accelerator=args.accelerator)
    print(metrics_table(metrics))
    saved = RunDir(args.run_dir).read_metrics()
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
    ray_only = {"--address": args.address, "--storage": args.storage != "auto",
                "--max-retries": args.max_retries != 2}  # fmt: skip
    if args.executor == "local" and any(ray_only.values()):
        used = ", ".join(flag for flag, value in ray_only.items() if value)
        raise ConfigError(f"{used} only apply with --executor ray")
    if args.executor == "ray" and (args.jobs != 1 or args.threads is not None):
        raise ConfigError(
            "--jobs and --threads apply to --executor local; with Ray, each cell gets the grid's "
            "`resources` (cpus = its torch threads), and as many run at once as the cluster fits"
        )
    config = load_benchmark_config(args.config)
    if args.merge:
        added, skipped = merge_results(config, args.merge)
        print(f"merged {added} row(s); {skipped} cell(s) already present were kept as they were")
    failed: list[str] = []
    if not args.summary_only and args.executor == "ray":
        from anomalia.cluster.executor import run_benchmark_on_ray

        _, failed = run_benchmark_on_ray(
            config, args.address, storage=args.storage, max_retries=args.max_retries
        )
    elif not args.summary_only:
        _, failed = run_benchmark(config, jobs=args.jobs, threads=args.threads)
    summary = write_summary(config)
    print(summary.read_text())
    print(f"results: {config.directory / 'results.csv'}\nsummary: {summary}")
    return 1 if failed else 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from anomalia.cluster.tune import (
        describe_values,
        load_search_config,
        run_search,
        score_test_set,
    )

    config = load_search_config(args.config, args.set)
    print(f"search {config.name}: {config.n_trials} trial(s), {config.metric} on validation data")
    result = run_search(config, address=args.address)
    best = result.best
    print(
        f"\nchosen on validation data: {describe_values(best.values)} ({config.metric} "
        f"{best.value:.4f} at the last of {best.epochs} epoch(s); trial {best.number} of "
        f"{len(result.rows)})\ntrials: {result.trials_csv}\nchosen settings: {result.best_yaml}"
    )
    if args.no_test:
        print(f"test set not scored (--no-test); later: anomalia train --config {result.best_yaml}")
        return 0
    run = score_test_set(result)
    print(
        f"\ntest AUROC of the chosen settings, measured once after the choice: "
        f"{run.metrics['auroc']:.4f}\nrun directory: {run.run_dir}"
    )
    return 0


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
        maps_dir=args.maps,
        save_raw_maps=args.raw_maps,
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
    from anomalia.experiment import export_run

    print(f"ONNX model: {export_run(args.run_dir, args.output)}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from anomalia.serve.server import run_server
    from anomalia.serve.settings import ServeSettings

    settings = ServeSettings(
        max_batch=args.max_batch,
        n_workers=args.workers,
        batch_wait_ms=args.batch_wait_ms,
        max_queue=args.max_queue,
        max_request_bytes=args.max_request_bytes,
        max_images_per_request=args.max_images_per_request,
        max_image_pixels=args.max_image_pixels,
        api_key=args.api_key or os.environ.get("ANOMALIA_API_KEY") or None,
    )
    run_server(
        args.model,
        settings,
        host=args.host,
        port=args.port,
        accelerator=args.accelerator,
        n_threads=args.threads,
        log_level=args.log_level,
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from anomalia.data import available_datasets
    from anomalia.methods import METHODS

    print("methods (set a model parameter with --set model.NAME=VALUE or its flag):")
    for name, method in sorted(METHODS.items()):
        abilities = [
            "needs labelled anomalies"
            if method.needs_labelled_anomalies
            else "one-class or with labelled anomalies",
            f"score: {method.score_name}",
            "reconstructions" if method.reconstructs else "no reconstructions",
            "anomaly maps" if method.has_maps else "no anomaly maps",
        ]
        print(f"\n  {name}: {method.summary}\n    {'; '.join(abilities)}")
        for f in dataclasses.fields(method.config_class):
            print(f"    {f.name} = {_shown(_default(f))}: {f.metadata.get('help', '')}")
    print("\ndatasets: " + ", ".join(available_datasets()))
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
        "serve": _cmd_serve,
        "tune": _cmd_tune,
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

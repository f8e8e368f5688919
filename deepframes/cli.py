"""The ``deepframes`` command: a thin layer over the public API.

Usage errors exit 2 with a hint; failures exit 1 with one line on stderr; ``--json`` prints one
JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from . import __version__
from .apps.errors import InputError
from .inference.novelty import DEFAULT_REJECT_THRESHOLD
from ._master import MasterUnreachableError
from .shipping import ShipEnvError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class CommandError(Exception):
    """A failure to report in one line, with exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's hook for usage errors
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{self.prog} --help' for help.\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", help="Spark master URL (default: $DEEPFRAMES_MASTER or local[*])")
    parser.add_argument("--ship-env", action="store_true",
                        help="pack this Python environment and run the executors' Python from it (cluster masters)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    # SUPPRESS: absent here, the value given before the command (deepframes -v COMMAND) stands
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress and print tracebacks")


def _resumable(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true",
                        help="continue the run that stopped in --out (same options): only the images it has not done")
    parser.add_argument("--max-errors", metavar="N",
                        help="stop once more than N images failed (a count, or a share below 1 such as 0.02); "
                             "by default failed images are rows with their reason and the job goes on")


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 224x224, got {text!r}")
    return parts[0], parts[1]


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    print(json.dumps(payload, default=str) if args.json else text)


def cmd_info(args: argparse.Namespace) -> None:
    from ._environment import environment_report

    report = environment_report(args.master)
    java = report["java"]
    lines = [
        f"deepframes {report['deepframes']}",
        f"Python     {report['python']} ({report['python_executable']})",
        f"PySpark    {report['pyspark']}",
        f"Java       {java['version'] or 'not found'} ({java['executable'] or 'no JAVA_HOME, no java on PATH'})"
        + ("" if java["usable"] else "  <- Spark needs Java 17+"),
    ]
    for name, engine in report["engines"].items():
        found = engine["version"] or f"missing ({engine['install']})"
        lines.append(f"{name:<10} {found}")
    lines.append(f"Master     {report['master']} (from {report['master_source']})")
    _emit(args, report, "\n".join(lines))


def cmd_images(args: argparse.Namespace) -> None:
    from .images import read_images
    from .images.summary import format_summary, summarize_images

    _check_paths(args.paths)
    started = time.perf_counter()
    spark = _spark(args, _QUIET)
    try:
        df = read_images(
            args.paths,
            label=args.label,
            size=args.size,
            recursive=not args.no_recursive,
            spark=spark,
            **({"extensions": None} if args.all_files else {}),
        )
    except ValueError as error:  # no image files, a bad --label: one line, exit 2
        raise InputError(str(error).replace("extensions=None", "--all-files")) from None
    summary = summarize_images(df)
    seconds = time.perf_counter() - started
    payload = {"paths": args.paths, **summary.as_dict(), "seconds": round(seconds, 2)}
    header = (
        f"{summary.num_files} files, {summary.num_images} images decoded, "
        f"{summary.num_labels} labels, {summary.num_errors} errors ({seconds:.1f} s on "
        f"{spark.sparkContext.master})"
    )
    _emit(args, payload, f"{header}\n{format_summary(summary)}")


# Commands that print their own progress lines (featurize, study, demo) turn Spark's console
# progress bar off, as the two would interleave; train and predict show Spark's bar (stages and
# tasks, on stderr) while they work.
_QUIET = {"spark.ui.showConsoleProgress": "false"}
_SHOW_PROGRESS = {"spark.ui.showConsoleProgress": "true"}


def _spark(args: argparse.Namespace, settings: dict[str, str]):
    """The session for a command: Spark's start-up noise off (unless -v), Ctrl-C in one line."""
    from ._console import quiet_interrupts, quiet_settings
    from .session import REMOTE_ENV_VAR, is_connect, session

    if os.environ.get(REMOTE_ENV_VAR):  # a Connect server's JVM: its start-up and console are not ours
        settings = {}
    elif not args.verbose:
        settings = {**quiet_settings(args.master), **settings}
        quiet_interrupts(None)
    spark = session(args.master, ship_env=args.ship_env, **settings)
    if not args.verbose and not is_connect(spark):
        quiet_interrupts(spark)
    return spark


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _check_paths(paths: Sequence[str]) -> None:
    """Refuse local paths that do not exist, before Spark starts (globs and URIs are left to Spark)."""
    from .storage import is_local

    for path in paths:
        if is_local(path) and not any(char in path for char in "*?[{") and not os.path.exists(
                path.removeprefix("file://").removeprefix("file:")):
            raise InputError(f"No such file or folder: {path}; expected images, a folder or a glob. Check the path.")


def cmd_featurize(args: argparse.Namespace) -> None:
    from ._console import ProgressLine
    from .apps.featurize import check_featurizer, featurize_images
    from .apps.resumable import parse_max_errors

    # Before Spark starts: a bad argument is one line, exit 2, in a second.
    _check_resumable_output(args.out, args.resume)
    check_featurizer(args.model, args.weights)
    max_errors = parse_max_errors(args.max_errors)
    _check_paths(args.images)
    result = featurize_images(args.images, args.out, model=args.model, weights=args.weights,
                              label=None if args.label == "none" else args.label,
                              spark=_spark(args, _QUIET), progress=ProgressLine("featurizing"),
                              resume=args.resume, max_errors=max_errors)
    classes = ", ".join(f"{name} {count}" for name, count in result.class_counts.items())
    resumed = f" ({result.num_resumed} done by the earlier run)" if result.num_resumed else ""
    text = (f"Wrote {result.num_images} rows of {result.num_features} features ({result.featurizer.model}) to "
            f"{result.out}{resumed} in {result.seconds:.1f} s; {result.num_failed} images failed "
            f"(rows with their reason in 'error').\n"
            f"Classes: {classes or 'none (no labels)'}")
    _emit(args, result.as_dict(), text)


def _check_resumable_output(out: str, resume: bool) -> None:
    """``--out`` of a resumable command, before Spark starts: not a folder deepframes did not
    write, and not an unfinished run unless ``--resume`` continues it."""
    from .apps.outputs import check_output
    from .apps.resumable import is_unfinished
    from .storage import is_local

    check_output(out)
    if is_local(out) and not resume and is_unfinished(None, out):
        raise InputError(f"Output {out} holds an unfinished run (interrupted or failed); add --resume to "
                         "continue it, or choose another --out.")


def cmd_study(args: argparse.Namespace) -> None:
    from .apps.duplicates import check_duplicates_threshold
    from .apps.outputs import check_output
    from .apps.study import parse_splits, run_study

    splits = parse_splits(args.splits)  # before Spark starts: a bad value is one line, exit 2
    if args.iterations < 1:
        raise InputError(f"--iterations must be a positive integer; got {args.iterations}.")
    check_output(args.out)
    _check_paths([args.features])
    classes = [name.strip() for name in args.classes.split(",") if name.strip()] if args.classes else None
    check_duplicates_threshold(args.duplicates_threshold)
    result = run_study(args.features, args.out, pairs=args.pairs, classes=classes, splits=splits,
                       iterations=args.iterations, classifier=args.classifier, seed=args.seed,
                       duplicates_threshold=args.duplicates_threshold, drop_duplicates=args.drop_duplicates,
                       spark=_spark(args, _QUIET), progress=_progress)
    rows = [f"  {row['class_1']} vs {row['class_2']}: {row['accuracy']:.3f} at split {row['split']:g}"
            for row in result.best[:10]]
    text = "\n".join([
        (f"{result.num_trainings} trainings ({result.num_pairs} pairs) in {result.seconds:.1f} s "
        f"({result.num_trainings / max(result.seconds, 1e-9):.1f} trainings/s)."),
        "Best split per pair, hardest first:", *rows,
        _duplicates_line(result.duplicates, result.num_dropped),
        f"Report: {result.out}/report.md (results.csv, plots/, models/)",
    ])
    _emit(args, result.as_dict(), text)


def _duplicates_line(pairs: list[dict], num_dropped: int) -> str:
    if not pairs:
        return "No near-duplicate photos."
    from .apps.duplicates import counted

    dropped = (f"{counted(num_dropped, 'photo')} left out before training" if num_dropped
               else "run with --drop-duplicates to keep one photo of each group")
    return f"Near-duplicate photos: {counted(len(pairs), 'pair')}, listed in the report ({dropped})."


def cmd_duplicates(args: argparse.Namespace) -> None:
    from .apps.duplicates import check_duplicates_threshold, find_duplicate_photos
    from .apps.featurize import check_featurizer
    from .apps.outputs import check_output

    # Before Spark starts: a bad argument is one line, exit 2, in a second.
    check_duplicates_threshold(args.threshold)
    if args.weights is not None or args.model is not None:
        check_featurizer(args.model or "squeezenet1.1", args.weights)
    if args.out is not None:
        check_output(args.out)
    _check_paths([args.source])
    result = find_duplicate_photos(args.source, threshold=args.threshold, model=args.model, weights=args.weights,
                                   out=args.out, spark=_spark(args, _QUIET))
    text = result.describe() + (f"\nReport: {result.out}/report.md (duplicates.csv, duplicates/)" if result.out else "")
    _emit(args, result.as_dict(), text)


def cmd_train(args: argparse.Namespace) -> None:
    from .apps.outputs import check_output
    from .apps.novelty import check_threshold
    from .apps.train import check_test_fraction, resolve_featurizer, train_classifier
    from .storage import is_local

    # Before Spark starts: a bad argument, an existing --out or missing weights is one line, exit 2.
    check_test_fraction(args.test_fraction)
    check_threshold(args.reject_threshold)
    check_output(args.out)
    _check_paths([args.source])
    if is_local(args.source):  # elsewhere it is looked at once Spark is up
        resolve_featurizer(args.source, args.model, args.weights)
    result = train_classifier(args.source, args.out, classifier=args.classifier, test_fraction=args.test_fraction,
                              seed=args.seed, label=args.label, model=args.model, weights=args.weights,
                              reject_threshold=args.reject_threshold, spark=_spark(args, _SHOW_PROGRESS))
    text = (f"Held-out accuracy {result.accuracy:.3f} ({result.classifier}, trained on {result.num_train}, "
            f"tested on {result.num_test}, {result.seconds:.1f} s)\n{result.table()}\n"
            f"Model: {result.out} (confusion_matrix.png, metrics.json beside it)")
    text += _novelty_line(result.novelty)
    _emit(args, result.as_dict(), text)


def _novelty_line(rates: dict | None) -> str:
    if not rates or rates.get("reject_threshold") is None:
        return ""
    line = (f"\nNot recognised (--reject-threshold {rates['reject_threshold']:g}): held-out photos accepted "
            f"{rates['held_out_accepted']:.3f} of {rates['num_held_out']}")
    if rates.get("non_pets_rejected") is not None:
        line += f"; non-pet photos rejected {rates['non_pets_rejected']:.3f} of {rates['num_non_pets']}"
    return line


def _check_reject_threshold(args: argparse.Namespace) -> None:
    """``--reject-threshold`` of predict and serve (an override, None when not given), before Spark starts."""
    from .apps.novelty import check_threshold

    if args.reject_threshold is not None:
        check_threshold(args.reject_threshold)


def cmd_predict(args: argparse.Namespace) -> None:
    from .apps.predict import BreedPredictor, format_predictions
    from .apps.train import check_model_dir

    _check_reject_threshold(args)
    if args.watch or args.once or (args.out and not args.images):
        _watch(args)
        return
    if args.out:
        _predict_to_folder(args)
        return
    if not args.images:
        raise InputError("predict needs IMAGES, or --watch DIR --out DIR to classify photos as they arrive.")
    if args.top < 1:  # before Spark starts: one line, exit 2
        raise InputError(f"--top must be a positive integer; got {args.top}.")
    check_model_dir(args.model_dir)
    _check_paths(args.images)
    predictor = _in_process_predictor(args)
    if predictor is None:
        predictor = BreedPredictor(args.model_dir, _spark(args, _SHOW_PROGRESS), reject_threshold=args.reject_threshold)
    predictions = predictor.predict_paths(args.images, top=args.top)
    payload = {"model": args.model_dir, "predictions": [p.as_dict() for p in predictions]}
    _emit(args, payload, format_predictions(predictions))


def _predict_to_folder(args: argparse.Namespace) -> None:
    """``predict MODEL IMAGES --out DIR``: one row per photo in DIR, resumable (``--resume``)."""
    from ._console import ProgressLine
    from .apps.predict import predict_to_folder
    from .apps.resumable import parse_max_errors
    from .apps.train import check_model_dir

    _check_resumable_output(args.out, args.resume)
    check_model_dir(args.model_dir)
    if args.top < 1:
        raise InputError(f"--top must be a positive integer; got {args.top}.")
    max_errors = parse_max_errors(args.max_errors)
    _check_paths(args.images)
    result = predict_to_folder(args.model_dir, args.images, args.out, top=args.top,
                               output_format=args.format or "parquet", resume=args.resume, max_errors=max_errors,
                               reject_threshold=args.reject_threshold, spark=_spark(args, _QUIET),
                               progress=ProgressLine("predicting"))
    resumed = f" ({result.num_resumed} done by the earlier run)" if result.num_resumed else ""
    text = (f"Wrote {result.num_photos} predictions to {result.out}{resumed} in {result.seconds:.1f} s; "
            f"{result.num_not_recognised} not recognised, {result.num_failed} failed (rows with their reason "
            "in 'error').")
    _emit(args, result.as_dict(), text)


def _no_cluster_asked(args: argparse.Namespace) -> bool:
    from .session import MASTER_ENV_VAR, REMOTE_ENV_VAR

    return not (args.master or args.ship_env or os.environ.get(MASTER_ENV_VAR) or os.environ.get(REMOTE_ENV_VAR))


def _in_process_predictor(args: argparse.Namespace):
    """A predictor that needs no Spark, for a few photos on this machine's disk and a model folder
    read without Spark; None when the work needs Spark (a --master, thousands of photos, a URI)."""
    from .apps.predict import IN_PROCESS_MAX_FILES, BreedPredictor
    from .images import IMAGE_EXTENSIONS
    from .images.listing import list_local_images
    from .inference.saved import NeedsSpark

    if not _no_cluster_asked(args) or list_local_images(args.images, IMAGE_EXTENSIONS, IN_PROCESS_MAX_FILES) is None:
        return None
    try:
        return BreedPredictor(args.model_dir, None, reject_threshold=args.reject_threshold)
    except NeedsSpark:
        return None


def _watch(args: argparse.Namespace) -> None:
    """``predict --watch``: a streaming query until Ctrl-C (or, with --once, until caught up)."""
    from .apps.watch import check_watch_output, watch_predictions

    if not args.watch or not args.out or args.images:
        raise InputError("--watch DIR and --out DIR go together, without IMAGES: deepframes predict MODEL_DIR "
                         f"--watch DIR --out DIR [--once]; got IMAGES={args.images}, --watch={args.watch}, "
                         f"--out={args.out}.")
    if args.max_files_per_batch is not None and args.max_files_per_batch < 1:
        raise InputError(f"--max-files-per-batch must be a positive integer; got {args.max_files_per_batch}.")
    check_watch_output(args.out)  # before Spark starts: a bad --out is one line, exit 2
    spark = _spark(args, _QUIET)
    if not args.once:
        _progress(f"Watching {args.watch}; predictions go to {args.out}. Ctrl-C stops (run again to resume).")
    result = watch_predictions(args.model_dir, args.watch, args.out, top=args.top, once=args.once,
                               output_format=args.format or "json", max_files_per_trigger=args.max_files_per_batch,
                               reject_threshold=args.reject_threshold,
                               spark=spark, progress=_progress)
    _emit(args, result.as_dict(), f"Predicted {result.num_photos} photos in {result.num_batches} batches "
                                  f"({result.seconds:.1f} s); predictions in {result.out}")


def _pixels(text: str) -> int:
    """``--max-pixels``: a count such as 50000000, or with M/MP for millions (50M, 12.5MP)."""
    value = text.strip().upper().removesuffix("P")
    scale = 1_000_000 if value.endswith("M") else 1
    try:
        pixels = int(float(value.removesuffix("M")) * scale)
    except ValueError:
        pixels = 0
    if pixels < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels such as 50000000 or 50M, got {text!r}")
    return pixels


def cmd_serve(args: argparse.Namespace) -> None:
    import os
    from pathlib import Path

    try:
        from .serve.app import create_app
        from .serve.server import ListenError, claim_port, is_loopback, serve
    except ImportError as error:
        raise CommandError(f"serve needs FastAPI and uvicorn ({error}): pip install 'deepframes[serve]'") from None
    from .apps.train import check_model_dir
    from .inference.saved import NeedsSpark
    from .serve.local import LocalPipeline

    if args.max_mb <= 0:
        raise InputError(f"--max-mb must be positive; got {args.max_mb}.")
    _check_reject_threshold(args)
    token = (args.token if args.token is not None else os.environ.get("DEEPFRAMES_TOKEN")) or None  # "": none
    try:  # before the model loads: a busy port is one line, and nothing has claimed to serve
        sock = claim_port(args.host, args.port)
    except ListenError as error:
        raise CommandError(str(error)) from None
    with sock:
        check_model_dir(args.model_dir)
        try:  # answers are in-process: Spark only when the folder cannot be read without it
            pipeline = LocalPipeline(args.model_dir, reject_threshold=args.reject_threshold)
        except NeedsSpark:
            pipeline = LocalPipeline(args.model_dir, _spark(args, _QUIET), reject_threshold=args.reject_threshold)
        model_dir = str(Path(args.model_dir).resolve())
        app = create_app(pipeline, model_dir, max_bytes=int(args.max_mb * 1024 * 1024), max_pixels=args.max_pixels,
                         token=token)
        port = sock.getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{port}/"
        payload = {"url": url, "model": model_dir, "labels": pipeline.labels, "mode": pipeline.mode,
                   "token_required": token is not None}
        _emit(args, payload, f"Serving {model_dir} ({len(pipeline.labels)} classes, {pipeline.mode}) at {url} "
                             f"(API docs: {url}docs{', token required' if token else ''}). Ctrl-C stops.")
        if token is None and not is_loopback(args.host):
            print(f"deepframes serve: warning: listening on {args.host} without a token: anyone who reaches this port "
                  "can use the API (set DEEPFRAMES_TOKEN, and put HTTPS in front: see the README).", file=sys.stderr)
        sys.stdout.flush()
        serve(app, sock)


def cmd_demo(args: argparse.Namespace) -> None:
    from .apps.demo import run_demo
    from .apps.outputs import check_output

    check_output(args.out)
    if args.images:
        _check_paths([args.images])
    _spark(args, _QUIET)
    result = run_demo(args.out, images=args.images, label=args.label, model=args.model, weights=args.weights,
                      master=args.master, progress=_progress)
    files = result.files
    sql = "\n".join(f"  {row['path'].rsplit('/', 1)[-1]}: label {row['label']}, predicted {row['predicted']}"
                    for row in result.sql_predictions)
    text = "\n".join([
        (f"{result.num_images} images of {result.num_classes} classes ({result.images}), featurized with "
        f"{result.network}, logistic regression: held-out accuracy {result.accuracy:.3f}."),
        "A few images predicted through Spark SQL (SELECT classify(image) ... with the saved model):", sql,
        f"Images:           {files['images']}",
        f"Features:         {files['features']} (Parquet)",
        f"Model:            {files['model']} (PipelineModel; try: deepframes serve {files['model']})",
        f"Confusion matrix: {files['confusion_matrix']}",
        f"Study:            {files['study']}/report.md (one class against the rest, plots/)",
        f"Report:           {files['report']}",
        f"Done in {result.seconds:.1f} s on {result.master}.",
    ])
    _emit(args, result.as_dict(), text)


def cmd_cluster(args: argparse.Namespace) -> None:
    from . import standalone

    try:
        if args.action == "start":
            info = standalone.start_cluster(args.workers, args.cores, args.memory, state_dir=args.state_dir,
                                            private_tmp=args.private_tmp)
        elif args.action == "stop":
            info = standalone.stop_cluster(args.state_dir)
        else:
            info = standalone.cluster_status(args.state_dir)
    except ValueError as error:  # bad input or nothing to stop: one line, exit 2
        raise InputError(str(error)) from None
    except RuntimeError as error:
        raise CommandError(str(error)) from None
    if info is None:
        _emit(args, {"running": False}, "No cluster is running (deepframes cluster start --workers 2).")
        return
    pids = ", ".join(f"{process.role} {process.pid}" for process in info.processes)
    if args.action == "stop":
        _emit(args, {"running": False, "stopped": info.as_dict()},
              f"Stopped the cluster at {info.master_url} ({pids}) and removed {info.state_dir}.")
        return
    workers = standalone.alive_workers(info)
    payload = {"running": True, **info.as_dict(), "alive_workers": workers}
    _emit(args, payload, "\n".join([
        f"Master:  {info.master_url}",
        f"Web UI:  {info.web_ui}",
        f"Workers: {workers} alive of {info.num_workers} ({info.cores} cores, {info.memory} each"
        f"{', a private /tmp and home each' if info.private_tmp else ''})",
        f"Pids:    {pids} (state: {info.state_dir})",
        f"Use it:  deepframes featurize ... --master {info.master_url}",
    ]))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepframes", description="Deep learning on Apache Spark DataFrames.")
    parser.add_argument("--version", action="version", version=f"deepframes {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    info = commands.add_parser("info", help="versions of Python, Spark, Java, engines; the master")
    _common(info)
    info.set_defaults(handler=cmd_info)

    images = commands.add_parser("images", help="count images per label and list unreadable files")
    images.add_argument("paths", nargs="+", metavar="PATH", help="folders, files or globs")
    images.add_argument("--label", help="folder, filename, or a regex with one group")
    images.add_argument("--size", type=_size, help="resize while reading, HEIGHTxWIDTH")
    images.add_argument("--no-recursive", action="store_true", help="skip subfolders")
    images.add_argument("--all-files", action="store_true", help="read every file, not only image extensions")
    _common(images)
    images.set_defaults(handler=cmd_images)

    featurize = commands.add_parser("featurize", help="image features, labels and paths to Parquet")
    featurize.add_argument("images", nargs="+", metavar="IMAGES", help="folders, files or globs of images")
    featurize.add_argument("--model", default="squeezenet1.1", help="named network (default: %(default)s)")
    featurize.add_argument("--weights", help="weights file (the ONNX file for squeezenet1.1), or 'imagenet'")
    featurize.add_argument("--label", default="filename",
                           help="filename (Breed_N.jpg), folder, a regex with one group, or none")
    featurize.add_argument("--out", required=True, help="Parquet folder to write (it grows as the job runs)")
    _resumable(featurize)
    _common(featurize)
    featurize.set_defaults(handler=cmd_featurize)

    study = commands.add_parser("study", help="binary classifiers per pair of classes over train/test splits")
    study.add_argument("features", metavar="FEATURES", help="Parquet written by 'deepframes featurize'")
    study.add_argument("--pairs", choices=["one-vs-one", "one-vs-rest"], default="one-vs-one")
    study.add_argument("--classes", help="comma-separated classes to study (default: all)")
    study.add_argument("--splits", default="0.1:0.9:0.1",
                       help="train fractions, START:STOP:STEP or a list (default: %(default)s)")
    study.add_argument("--iterations", type=int, default=100, help="max iterations per training")
    study.add_argument("--classifier", choices=["svm", "logreg"], default="svm")
    study.add_argument("--seed", type=int, default=0)
    study.add_argument("--duplicates-threshold", type=float, default=0.95, metavar="SIMILARITY",
                       help="list pairs of photos whose features' cosine similarity is at least this (default 0.95)")
    study.add_argument("--drop-duplicates", action="store_true",
                       help="keep one photo of each group of near-duplicates, so no split has one on each side")
    study.add_argument("--out", required=True, help="report folder to write")
    _common(study)
    study.set_defaults(handler=cmd_study)

    duplicates = commands.add_parser("duplicates", help="groups of near-duplicate photos in a collection")
    duplicates.add_argument("source", metavar="SOURCE",
                            help="photos (folder, glob or URI) or a features folder written by 'deepframes featurize'")
    duplicates.add_argument("--threshold", type=float, default=0.95, metavar="SIMILARITY",
                            help="the least cosine similarity of two photos' features (default 0.95)")
    duplicates.add_argument("--model", help="named network for photos (default: squeezenet1.1)")
    duplicates.add_argument("--weights", help="weights file (the ONNX file for squeezenet1.1), or 'imagenet'")
    duplicates.add_argument("--out", help="also write a report folder (report.md with thumbnails, duplicates.csv)")
    _common(duplicates)
    duplicates.set_defaults(handler=cmd_duplicates)

    train = commands.add_parser("train", help="a multiclass classifier saved as a PipelineModel")
    train.add_argument("source", metavar="FEATURES|IMAGES", help="a features Parquet folder, or images")
    train.add_argument("--out", required=True, help="model folder to write")
    train.add_argument("--classifier", choices=["logreg", "mlp"], default="logreg")
    train.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of each class")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--label", default="filename", help="for images: filename, folder or a regex")
    train.add_argument("--model", help="the featurizing network (default: the one the features record, "
                                       "else squeezenet1.1)")
    train.add_argument("--weights", help="the network's weights file (for features: replaces the path they record)")
    train.add_argument("--reject-threshold", type=float, default=DEFAULT_REJECT_THRESHOLD,
                       help="answer 'not recognised' for photos less typical than this share of held-out training "
                            "photos; higher rejects more, 0 never (default: %(default)s)")
    _common(train)
    train.set_defaults(handler=cmd_train)

    predict = commands.add_parser("predict", help="top classes with probabilities for images")
    predict.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by 'deepframes train'")
    predict.add_argument("images", nargs="*", metavar="IMAGES", help="image files, folders or globs")
    predict.add_argument("--top", type=int, default=3, help="classes per image (default: %(default)s)")
    predict.add_argument("--watch", metavar="DIR",
                         help="classify photos as they land in DIR (any Hadoop URI), each once, until Ctrl-C")
    predict.add_argument("--out", metavar="DIR", help="folder (any Hadoop URI) for one row per photo, written as the "
                                                      "job runs; with --watch it holds the checkpoint too, and the "
                                                      "same --out resumes")
    predict.add_argument("--once", action="store_true", help="with --watch: predict the photos there now, then stop")
    predict.add_argument("--format", choices=["json", "parquet"], default=None,
                         help="with --out: output files (default: json with --watch, parquet otherwise)")
    predict.add_argument("--max-files-per-batch", type=int, metavar="N", help="with --watch: photos per batch at most")
    _resumable(predict)
    predict.add_argument("--reject-threshold", type=float,
                         help="override the model's 'not recognised' threshold, in [0, 1); 0: never")
    _common(predict)
    predict.set_defaults(handler=cmd_predict)

    serve = commands.add_parser("serve", help="a web page and JSON API answering with the top breeds of a photo")
    serve.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by 'deepframes train'")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on: 0.0.0.0 for every network of this machine (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--max-mb", type=float, default=10, help="upload size limit in MB (default: %(default)s)")
    serve.add_argument("--max-pixels", type=_pixels, default=50_000_000, metavar="PIXELS",
                       help="refuse photos with more pixels than this, by their header, before decoding them; "
                            "50M is a phone camera's largest (default: 50M)")
    serve.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API (default: $DEEPFRAMES_TOKEN; "
                                       "prefer the variable: a command line is visible to other users)")
    serve.add_argument("--reject-threshold", type=float,
                       help="override the model's 'not recognised' threshold, in [0, 1); 0: never")
    _common(serve)
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="the whole path on scikit-learn's digits (or --images), in minutes")
    demo.add_argument("--out", default="deepframes-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--images", help="a labelled image folder to use instead of the digits")
    demo.add_argument("--label", default="folder", help="with --images: folder, filename or a regex")
    demo.add_argument("--model", help="a named pretrained network instead of the small one (e.g. squeezenet1.1)")
    demo.add_argument("--weights", help="the network's weights file")
    _common(demo)
    demo.set_defaults(handler=cmd_demo)

    cluster = commands.add_parser("cluster", help="start, inspect or stop a standalone Spark cluster on this machine")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    for action, text in (("start", "start a master and workers; print the master URL and web UI"),
                         ("status", "the running cluster's URL, web UI and workers"),
                         ("stop", "stop exactly the processes 'start' started; remove their folder")):
        verb = actions.add_parser(action, help=text)
        if action == "start":
            verb.add_argument("--workers", type=int, default=2, help="workers to start (default: %(default)s)")
            verb.add_argument("--cores", type=int, default=1, help="cores per worker (default: %(default)s)")
            verb.add_argument("--memory", default="1g", help="memory per worker (default: %(default)s)")
            verb.add_argument("--private-tmp", action="store_true",
                              help="give each worker its own /tmp and home (a mount namespace, as root), so "
                                   "executors see no file of the driver's /tmp, as on other machines; "
                                   "folders outside /tmp play the shared storage")
        verb.add_argument("--state-dir", help="folder recording the cluster (default: $DEEPFRAMES_CLUSTER_DIR "
                                              "or ~/.cache/deepframes/cluster)")
        verb.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        verb.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log progress and print tracebacks")
        verb.set_defaults(handler=cmd_cluster)
    return parser


def _one_line(error: BaseException) -> str:
    """The readable part of an error; for Spark's executor errors, the Python exception raised there."""
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error: " in line and not line.lstrip().startswith("at "):
            return line.strip()
    return lines[-1] if lines else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``deepframes`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except KeyboardInterrupt:
        return _interrupted(args)
    except Exception as error:
        return _interrupted(args) if _ctrl_c_seen() else _failed(args, error)
    return 0


def _ctrl_c_seen() -> bool:
    from ._console import interrupted

    return interrupted()


def _interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C: one line, exit 130. Spark's jobs are cancelled; outputs in progress are removed."""
    from ._console import finish_interrupt
    from .session import running_session

    if args.verbose:
        traceback.print_exc()
    from .apps.outputs import remove_abandoned_staging

    try:
        finish_interrupt(running_session())
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
        pass
    remove_abandoned_staging()
    print(f"deepframes {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _resume_hint(args: argparse.Namespace) -> str:
    """How to continue a resumable command that stopped with part of its output written (what
    the cancelled tasks had begun, under ``_temporary``, is removed: Spark has stopped)."""
    from .apps.resumable import is_unfinished
    from .storage import delete, is_local, join

    out = getattr(args, "out", None)
    if "resume" not in args or not out or not is_local(out) or not is_unfinished(None, out):
        return ""
    delete(None, join(out, "_temporary"))
    return f"; the rows written are kept in {out}: run the same command with --resume to continue"


def _failed(args: argparse.Namespace, error: Exception) -> int:
    """One line on stderr: exit 2 for bad input (nothing written), 1 for any other failure."""
    if isinstance(error, CommandError):
        print(f"deepframes {args.command}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if isinstance(error, (InputError, MasterUnreachableError, ShipEnvError)):
        print(f"deepframes {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.verbose:  # every other failure becomes one line; -v logs the traceback
        traceback.print_exc()
    print(f"deepframes {args.command}: error: {_one_line(error)}", file=sys.stderr)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

"""``tune``: a hyperparameter search whose trials run concurrently as Spark tasks.

The training rows are gathered once into one Parquet file that Spark sends to every executor
(``core.files.ship_file``: no disk shared with the driver needed); a Python worker reads it on its
first trial and keeps it for every later trial it runs. Each one-slot trial is one Spark task of
its own job, so a failure, a pruned trial or a cancelled one touches nothing else; trials with
``numSlots > 1`` run as Distributor fits on the same rows, kept in Spark's cache. Trials report
their epochs to a board kept in the driver (``pruning.BoardKeeper``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from .estimator import TrainingEstimator, pickled
from .loop import TrainConfig
from .pruning import Board, BoardKeeper, TrialPruned, median_rule

logger = logging.getLogger(__name__)

SEARCHES = ("grid", "random", "optuna")
# rows a Python worker keeps: {shipped file name: arrow table}
_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class TrialTask:
    """One trial, shipped to its Spark task."""

    trial: int
    data_file: str  # the training rows' file, as SparkFiles names it (core.files.ship_file)
    driver_path: str  # the same file on the driver, for trials that run in its process
    config: TrainConfig
    fit: Callable
    board: Board
    keep_model: bool = False


@dataclass
class TuneResult:
    """What ``tune`` returns: every trial, the best parameters and the model refitted with them."""

    results: Any  # pandas.DataFrame
    best_params: dict[str, Any]
    best_model: Any


def _cached_table(name: str, driver_path: str) -> Any:
    """The training rows, read from the shipped file ``name`` once per Python worker."""
    from ..core.files import shipped_path

    with _CACHE_LOCK:
        if name not in _CACHE:
            import pyarrow.parquet as pq

            _CACHE.clear()
            _CACHE[name] = pq.read_table(shipped_path(name, driver_path))
        return _CACHE[name]


def run_trial(task: TrialTask) -> dict:
    """A trial in a Spark task: train on the cached rows, report each epoch to the board."""
    from pyspark import TaskContext

    from .data import rank_data

    threads = max(1, int(TaskContext.get().cpus())) if TaskContext.get() else 1
    _limit_threads(threads)
    started = time.perf_counter()
    try:
        data = rank_data(_cached_table(task.data_file, task.driver_path), task.config.feature)
        result = task.fit(task.config, data, task.board.report)
        status, error = "ok", None
        history = result["history"]
        model = result.get("model") if task.keep_model else None
        summary = result.get("summary") if task.keep_model else None
    except TrialPruned as stop:
        status, error, history, model, summary = "pruned", str(stop), None, None, None
    except TimeoutError as stop:
        status, error, history, model, summary = "cancelled", str(stop), None, None, None
    # A stopped trial's curve is what it reported: the driver reads it off the board.
    return {"status": status, "error": error, "history": history, "model": model, "summary": summary,
            "seconds": time.perf_counter() - started}


def _limit_threads(threads: int) -> None:
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except (ImportError, RuntimeError):
        pass  # no TensorFlow, or already started in this worker: its first settings stay
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _grid(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = list(space)
    values = [list(space[name]) for name in names]
    return [dict(zip(names, combination)) for combination in itertools.product(*values)]


def _sample(space: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A list is a set of choices; a (low, high) tuple a range (log-uniform when both are > 0
    and span more than 10x; integers when both bounds are)."""
    params = {}
    for name, domain in space.items():
        if isinstance(domain, tuple) and len(domain) == 2:
            low, high = domain
            if isinstance(low, int) and isinstance(high, int):
                params[name] = int(rng.integers(low, high + 1))
            elif low > 0 and high / low > 10:
                params[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                params[name] = float(rng.uniform(low, high))
        else:
            choices = list(domain)
            params[name] = choices[int(rng.integers(len(choices)))]
    return params


def _check_space(estimator: TrainingEstimator, space: Mapping[str, Any]) -> None:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(
            f"tune needs a search space: a dict of Param name -> values. Received {space!r}; pass e.g. "
            "{'learningRate': [0.001, 0.01]}."
        )
    for name in space:
        if not estimator.hasParam(str(name)):
            known = sorted(param.name for param in estimator.params)
            raise ValueError(
                f"The search space names Param {name!r}, which {type(estimator).__name__} does not have. "
                f"Expected Params among {known}; rename {name!r} to one of them."
            )


def _check_metric(estimator: TrainingEstimator, metric: str, evaluator: Any, mode: str) -> None:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min'. Received: mode={mode!r}; pass mode='min' for losses.")
    if evaluator is not None:
        doc = evaluator.getParam("metricName").doc
        if metric not in doc.replace("(", "|").replace(")", "|").replace(" ", "|").split("|"):
            raise ValueError(
                f"The evaluator {type(evaluator).__name__} does not know metric {metric!r}: expected one "
                f"of {doc!r}. Pass one of those as metric=."
            )
        return
    names = ["loss", *estimator.getOrDefault(estimator.metrics)]
    known = names + [f"val_{name}" for name in names]
    if metric not in known:
        raise ValueError(
            f"tune cannot read metric {metric!r} off the training history: expected one of {known}. "
            "Pass one of those as metric= (val_* are on the held-out rows), or pass an evaluator."
        )


def _sampler(search: str, space: Mapping[str, Any], num_trials: int | None, seed: int | None):
    """A function returning the next trial's params (or None when the search is over)."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}. Received: search={search!r}.")
    if search == "grid":
        grid = iter(_grid(space)[:num_trials] if num_trials else _grid(space))
        return lambda study: next(grid, None), None
    if num_trials is None:
        raise ValueError(f"search={search!r} needs num_trials (how many trials to run). Received num_trials=None.")
    if search == "random":
        rng = np.random.default_rng(seed)
        samples = iter([_sample(space, rng) for _ in range(num_trials)])
        return lambda study: next(samples, None), None
    try:
        import optuna
    except ImportError:
        raise ImportError("tune(search='optuna') needs Optuna: pip install 'deepframes[tune]'") from None
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    remaining = [num_trials]

    def ask(_):
        if remaining[0] == 0:
            return None
        remaining[0] -= 1
        trial = study.ask()
        params = {}
        for name, domain in space.items():
            if isinstance(domain, tuple) and len(domain) == 2 and isinstance(domain[0], int) and isinstance(domain[1], int):
                params[name] = trial.suggest_int(name, domain[0], domain[1])
            elif isinstance(domain, tuple) and len(domain) == 2:
                params[name] = trial.suggest_float(name, domain[0], domain[1], log=domain[0] > 0 and domain[1] / domain[0] > 10)
            else:
                params[name] = trial.suggest_categorical(name, list(domain))
        params["__optuna_trial"] = trial
        return params

    return ask, study


def tune(
    estimator: TrainingEstimator,
    df: Any,
    space: Mapping[str, Any],
    *,
    metric: str,
    mode: str = "max",
    search: str = "grid",
    num_trials: int | None = None,
    parallelism: int | None = None,
    time_budget: float | None = None,
    early_stop: str | Callable | None = None,
    evaluator: Any = None,
    seed: int | None = None,
    mlflow: bool = False,
    refit: bool = True,
) -> TuneResult:
    """Search ``space`` for the ``estimator`` Params that give the best ``metric``.

    Parameters
    ----------
    estimator : KerasEstimator or TorchEstimator
    df : DataFrame
        Training rows (featuresCol, labelCol). Trials hold out ``validationFraction`` of them
        (0.2 when the estimator's is 0) to compute ``val_*`` metrics. Every one-slot trial trains
        on all of them in memory: they are gathered once on the driver into one file that Spark
        sends to each executor (no shared disk needed), so they must fit the driver's memory and
        each executor's.
    space : dict
        Param name -> a list of values (choices), or a ``(low, high)`` range for random and
        Optuna searches.
    metric : str
        A history metric (``val_accuracy``, ``val_loss``, ...) or, with ``evaluator``, one of its
        metric names (computed on the held-out rows after the trial).
    mode : {"max", "min"}
    search : {"grid", "random", "optuna"}
        Optuna's TPE sampler needs ``pip install 'deepframes[tune]'``.
    num_trials : int, optional
        Trials to run (random and Optuna searches; caps a grid).
    parallelism : int, optional
        Trials at once (default: the cluster's task slots / ``numSlots``).
    time_budget : float, optional
        Seconds: no trial starts after it, and running trials stop (status ``cancelled``).
    early_stop : "median" or callable, optional
        Prune a trial whose metric after an epoch is worse than the median of the other trials
        at that epoch; a callable ``(mine, others, mode) -> bool`` decides instead.
    evaluator : pyspark.ml Evaluator, optional
    seed : int, optional
        Random and Optuna sampling; trials use the estimator's own ``seed``.
    refit : bool
        Refit the best parameters on all of ``df`` (``best_model``; None without refit).
    mlflow : bool
        Log every trial as an MLflow run (parameters, metric per epoch) and the best model.

    Returns
    -------
    TuneResult
        ``results`` (pandas: trial, one column per Param, status, the metric per epoch and
        final, seconds, error), ``best_params``, ``best_model`` (refitted on all of ``df``).

    Examples
    --------
    >>> import deepframes
    >>> from deepframes.training.examples import two_blobs, small_torch_mlp
    >>> spark = deepframes.session("local[2]")
    >>> estimator = deepframes.TorchEstimator(model=small_torch_mlp, epochs=2, batchSize=20)
    >>> found = deepframes.tune(estimator, two_blobs(spark, 200), {"learningRate": [0.01, 0.05]},
    ...                         metric="val_accuracy")
    >>> len(found.results), sorted(found.best_params)
    (2, ['learningRate'])
    """
    _check_space(estimator, space)
    _check_metric(estimator, metric, evaluator, mode)
    if mlflow:
        try:
            import mlflow as _mlflow  # noqa: F401
        except ImportError:
            raise ImportError("tune(mlflow=True) needs MLflow: pip install 'deepframes[tune]'") from None
    sample, study = _sampler(search, space, num_trials, seed)
    spark = df.sparkSession
    if estimator.getOrDefault(estimator.validationFraction) == 0:
        trial_estimator = estimator.copy({estimator.validationFraction: 0.2})
    else:
        trial_estimator = estimator.copy()
    frame, base_config, data_summary = trial_estimator.prepare(df)
    slots = trial_estimator.getOrDefault(trial_estimator.numSlots)
    parallelism = parallelism or max(1, spark.sparkContext.defaultParallelism // slots)
    rule = None
    if early_stop == "median":
        rule = pickled(median_rule, "early_stop rule", "tune")
    elif callable(early_stop):
        rule = pickled(early_stop, "early_stop rule", "tune")
    elif early_stop is not None:
        raise ValueError(f"early_stop must be 'median', a callable or None. Received: early_stop={early_stop!r}.")

    # The rows once, in Spark's cache (multi-slot trials and the evaluator read them there) and
    # in one file Spark sends to every executor: no trial reads a path only the driver has.
    frame = frame.persist()
    try:
        rows_file = _ship_rows(spark, frame)
        with BoardKeeper(_driver_host(spark)) as board:
            deadline = time.time() + time_budget if time_budget else None
            rows = _run_trials(spark, trial_estimator, sample, study, base_config, frame, rows_file, board,
                               rule, metric, mode, parallelism, deadline, evaluator, slots, data_summary.num_train)
    finally:
        frame.unpersist()
    import pandas as pd

    results = pd.DataFrame(rows)
    finished = results[results["status"] == "ok"].dropna(subset=["metric"])
    if finished.empty:  # out of time before any trial ended: judge by the last epoch each reached
        partial = results[f"{metric}_per_epoch"].map(lambda curve: curve[-1] if len(curve) else None)
        finished = results.assign(metric=partial).dropna(subset=["metric"])
    if finished.empty:
        raise RuntimeError(
            f"No trial of the search finished: {results['status'].value_counts().to_dict()}. First error: "
            f"{next((e for e in results['error'] if e), None)}. Fix it, or widen time_budget."
        )
    best_row = finished.loc[finished["metric"].idxmax() if mode == "max" else finished["metric"].idxmin()]
    best_params = {name: best_row[name] for name in space}
    best_model = estimator.copy(_param_map(estimator, best_params)).fit(df) if refit else None
    if mlflow and best_model is not None:
        _log_to_mlflow(results, space, metric, best_model)
    return TuneResult(results, best_params, best_model)


def _ship_rows(spark: Any, frame: Any) -> tuple[str, str]:
    """Gather ``frame``'s rows into one Parquet file and send it to every executor; returns (the
    name executors find it under with SparkFiles, its path here).

    The file is named by its digest and kept for the life of this process (Spark serves an added
    file to every executor that joins later, and refuses a second file of the same name): a search
    run again on the same rows ships nothing new, and its workers reuse the rows they keep.
    """
    import hashlib

    import pyarrow.parquet as pq

    from ..core.files import digest_named_copy, ship_file

    with tempfile.TemporaryDirectory(prefix="deepframes-tune-") as folder:
        written = os.path.join(folder, "rows.parquet")
        pq.write_table(frame.toArrow(), written)
        digest = hashlib.sha256()
        with open(written, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        path = digest_named_copy(written, digest.hexdigest())
    return ship_file(spark, path, "The training rows"), path


def _driver_host(spark: Any) -> str:
    """The address executors reach the driver at (the Distributor's channel uses the same)."""
    return spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")


def _param_map(estimator: TrainingEstimator, params: Mapping[str, Any]) -> dict:
    return {estimator.getParam(name): value for name, value in params.items() if not name.startswith("__")}


def _run_trials(spark, estimator, sample, study, base_config, frame, rows_file, board, rule, metric, mode,
                parallelism, deadline, evaluator, slots, num_train) -> list[dict]:
    context = spark.sparkContext
    data_file, driver_path = rows_file
    run_id = uuid.uuid4().hex[:8]
    rows: list[dict] = []
    best = [None]

    def launch(index: int, params: dict) -> dict:
        group = f"deepframes-tune-{run_id}-{index}"
        context.setJobGroup(group, f"deepframes tune trial {index}", interruptOnCancel=True)
        started = time.perf_counter()
        candidate = estimator.copy(_param_map(estimator, params))
        try:
            config = candidate.build_config(base_config.feature)
            if slots > 1:  # a Distributor run per trial (no pruning between epochs), stopped at the deadline
                remaining = None if deadline is None else max(1.0, deadline - time.time())
                result = candidate.run_ranks(frame, config, num_train, timeout=remaining)
                outcome = {"status": "ok", "error": None, **result}
            else:
                # With an evaluator, trials are compared by their validation loss between epochs.
                trial_board = Board(board.address, index, metric if evaluator is None else "val_loss",
                                    mode if evaluator is None else "min", rule, deadline)
                task = TrialTask(index, data_file, driver_path, config, candidate._local_fit(), trial_board,
                                 evaluator is not None)
                (outcome,) = context.parallelize([task], 1).map(run_trial).collect()
                if outcome["status"] != "ok":
                    outcome["history"] = {metric: board.curve(index)}
            if evaluator is not None and outcome["status"] == "ok":
                outcome["evaluated"] = _evaluate(candidate, outcome, frame, evaluator, metric)
        except Exception as error:  # noqa: BLE001 - a failing trial is recorded, the search goes on
            cancelled = deadline is not None and time.time() >= deadline
            outcome = {"status": "cancelled" if cancelled else "failed", "history": {metric: board.curve(index)},
                       "error": "time_budget ran out" if cancelled else _short_error(str(error).strip().splitlines())}
        outcome["seconds"] = time.perf_counter() - started
        return outcome

    def record(index: int, params: dict, outcome: dict) -> None:
        curve = list(outcome.get("history", {}).get(metric, [])) if evaluator is None else []
        final = curve[-1] if curve and outcome["status"] == "ok" else outcome.get("evaluated")
        public = {name: value for name, value in params.items() if not name.startswith("__")}
        rows.append({"trial": index, **public, "status": outcome["status"], "metric": final,
                     f"{metric}_per_epoch": curve, "seconds": round(outcome["seconds"], 2),
                     "error": outcome.get("error")})
        if study is not None and "__optuna_trial" in params:
            import optuna

            trial = params["__optuna_trial"]
            if final is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, final)
        if final is not None and (best[0] is None or (final > best[0] if mode == "max" else final < best[0])):
            best[0] = final
        counts = {status: sum(row["status"] == status for row in rows) for status in ("ok", "failed", "pruned", "cancelled")}
        logger.info("tune: %d done (%d failed, %d pruned, %d cancelled), %d running; best %s %s",
                    len(rows), counts["failed"], counts["pruned"], counts["cancelled"], len(running), metric,
                    "-" if best[0] is None else f"{best[0]:.4f}")

    running: dict = {}
    index = 0
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="deepframes-tune") as pool:
        exhausted = False
        while True:
            while not exhausted and len(running) < parallelism and (deadline is None or time.time() < deadline):
                params = sample(study)
                if params is None:
                    exhausted = True
                    break
                running[pool.submit(launch, index, params)] = (index, params)
                index += 1
            if not running:
                break
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
            if not done and deadline is not None and time.time() >= deadline:
                for trial_index, _ in running.values():
                    context.cancelJobGroup(f"deepframes-tune-{run_id}-{trial_index}")
                done, _ = wait(list(running))
                exhausted = True
            for future in done:
                trial_index, params = running.pop(future)
                record(trial_index, params, future.result())
    return sorted(rows, key=lambda row: row["trial"])


def _evaluate(candidate, outcome, frame, evaluator, metric) -> float:
    """``evaluator``'s ``metric`` of a trial's model on the held-out rows of ``frame``."""
    from pyspark.sql import functions as F

    from .data import FEATURES, LABEL, VALIDATION

    fitted = candidate.fitted_model(outcome)
    held = frame.where(F.col(VALIDATION)).select(
        F.col(FEATURES).alias(candidate.getFeaturesCol()), F.col(LABEL).alias(candidate.getLabelCol()))
    return float(evaluator.copy({evaluator.getParam("metricName"): metric}).evaluate(fitted.transform(held)))


def _short_error(lines: Sequence[str]) -> str:
    """The exception line of an error (the last line naming an Error), not its Java stack."""
    import re

    named = [line.strip() for line in lines if re.match(r"\s*[\w.]*(Error|Exception)\b", line)]
    return (named[-1] if named else (lines[0] if lines else ""))[:500]


def _log_to_mlflow(results, space, metric, best_model) -> None:
    import mlflow

    for row in results.to_dict("records"):
        with mlflow.start_run(run_name=f"trial-{row['trial']}"):
            mlflow.log_params({name: row[name] for name in space})
            mlflow.set_tag("status", row["status"])
            for step, value in enumerate(row[f"{metric}_per_epoch"]):
                mlflow.log_metric(metric, value, step=step)
    with mlflow.start_run(run_name="best-model"):
        with tempfile.TemporaryDirectory(prefix="deepframes-best-") as folder:
            best_model.write().overwrite().save(os.path.join(folder, "model"))
            mlflow.log_artifacts(folder)


__all__ = ["TuneResult", "median_rule", "tune"]

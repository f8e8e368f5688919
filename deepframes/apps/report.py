"""Reports of the application: the study's CSV, Markdown and plots; the confusion matrix.

Plots use Matplotlib's object API with the Agg canvas (no display, no global pyplot state), so
they can be drawn inside Spark tasks and in threads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

RESULT_COLUMNS = ("class_1", "class_2", "split", "iterations", "model_no", "accuracy", "n_train", "n_test",
                  "n_correct", "seconds")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_pair(rows: Sequence[dict], class_1: str, class_2: str) -> bytes:
    """PNG bytes of one pair's accuracy against the train fraction.

    >>> plot_pair([{"split": 0.5, "accuracy": 0.9}, {"split": 0.8, "accuracy": 0.95}], "a", "b")[:4]
    b'\\x89PNG'
    """
    figure = _figure(4, 3)
    axes = figure.add_subplot()
    axes.plot([row["split"] for row in rows], [row["accuracy"] for row in rows], marker="o")
    axes.set(title=f"{class_1} vs {class_2}", xlabel="train fraction", ylabel="test accuracy", ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    figure.subplots_adjust(left=0.17, bottom=0.16, right=0.96, top=0.9)  # tight_layout costs more than the plot
    return _png(figure)


def plot_overview(results: dict[str, list[dict]]) -> bytes:
    """PNG bytes: mean accuracy against split over all pairs, with the range and the hardest pairs."""
    splits = sorted({row["split"] for rows in results.values() for row in rows})
    table = np.array([[next((r["accuracy"] for r in rows if r["split"] == s), np.nan) for s in splits]
                      for rows in results.values()])
    figure = _figure(6, 4)
    axes = figure.add_subplot()
    axes.fill_between(splits, np.nanmin(table, 0), np.nanmax(table, 0), alpha=0.2, label="range over pairs")
    axes.plot(splits, np.nanmean(table, 0), marker="o", label=f"mean of {len(results)} pairs")
    hardest = sorted(results, key=lambda name: np.nanmax(table[list(results).index(name)]))[:3]
    for name in hardest:
        axes.plot(splits, table[list(results).index(name)], linestyle="--", label=name)
    axes.set(title="Accuracy against split", xlabel="train fraction", ylabel="test accuracy", ylim=(0, 1.02))
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], title: str = "Confusion matrix") -> bytes:
    """PNG bytes of a confusion matrix (rows: true class, columns: predicted).

    >>> plot_confusion(np.array([[3, 1], [0, 4]]), ["cat", "dog"])[:4]
    b'\\x89PNG'
    """
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = _figure(size, size)
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(ticks, labels, fontsize=8)
    axes.set(title=title, xlabel="predicted", ylabel="true")
    if len(labels) <= 20:
        for (row, column), value in np.ndenumerate(matrix):
            axes.text(column, row, str(value), ha="center", va="center", fontsize=8,
                      color="white" if value > matrix.max() / 2 else "black")
    figure.tight_layout()
    return _png(figure)


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def write_study_report(folder: Path, outcomes: Sequence, config, pairs: str,
                       safe_name: Callable[[str], str], extra: Sequence[str] = ()) -> list[dict]:
    """Write results.csv, report.md, plots/ and models/ for the study's outcomes; return the best
    rows. ``extra``: Markdown lines appended to the report (a section of its own)."""
    (folder / "plots").mkdir()
    (folder / "models").mkdir()
    rows = [row for outcome in outcomes for row in outcome.rows]
    write_csv(folder / "results.csv", rows, RESULT_COLUMNS)
    by_pair: dict[str, list[dict]] = {}
    best = []
    for outcome in outcomes:
        name = f"{outcome.task.class_1} vs {outcome.task.class_2}"
        stem = safe_name(f"{outcome.task.class_1}__{outcome.task.class_2}")
        by_pair[name] = outcome.rows
        (folder / "plots" / f"{stem}.png").write_bytes(outcome.plot)
        (folder / "models" / f"{stem}.pkl").write_bytes(outcome.model)
        top = max(outcome.rows, key=lambda row: row["accuracy"])
        best.append({**{key: top[key] for key in ("class_1", "class_2", "split", "accuracy", "model_no")},
                     "plot": f"plots/{stem}.png", "model": f"models/{stem}.pkl"})
    (folder / "plots" / "overview.png").write_bytes(plot_overview(by_pair))
    best.sort(key=lambda row: (row["accuracy"], row["class_1"], row["class_2"]))
    seconds = sum(row["seconds"] for row in rows)
    lines = [
        "# Study report", "",
        (f"{len(outcomes)} pairs ({pairs}), {len(config.splits)} splits each "
        f"({', '.join(f'{s:g}' for s in config.splits)}), {config.classifier} at {config.iterations} "
        f"iterations, seed {config.seed}: {len(rows)} trainings, {seconds:.1f} s of training time in all."),
        "", "![Accuracy against split](plots/overview.png)", "",
        "## Best split per pair, hardest pairs first", "",
    ]
    lines += _markdown_table(
        ["pair", "best split", "accuracy", "plot", "model"],
        [(f"{row['class_1']} vs {row['class_2']}", f"{row['split']:g}", f"{row['accuracy']:.3f}",
          f"[plot]({row['plot']})", f"`{row['model']}`") for row in best],
    )
    lines += ["", ("Every training is in `results.csv`; models are pickled dicts "
              "(`model`, `classes`, `positive`, `split`, `accuracy`), load them with `pickle.load`."), ""]
    lines += list(extra)
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return best

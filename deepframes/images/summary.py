"""A one-job summary of an image DataFrame: files, decoded images and errors per label."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Errors listed in a summary; the counts always cover every file.
MAX_ERRORS_LISTED = 20


@dataclass
class LabelCount:
    label: str | None
    num_files: int
    num_errors: int


@dataclass
class ImageSummary:
    """Counts from ``summarize_images``; ``as_dict()`` is what ``--json`` prints."""

    num_files: int
    num_images: int
    num_errors: int
    labels: list[LabelCount] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return sum(1 for entry in self.labels if entry.label is not None)

    def as_dict(self) -> dict:
        return {**asdict(self), "num_labels": self.num_labels}


def summarize_images(df: DataFrame) -> ImageSummary:
    """Count files, decoded images and errors per label of a ``read_images`` DataFrame, in one job.

    Examples
    --------
    >>> import deepframes
    >>> from deepframes.images.summary import summarize_images
    >>> df = deepframes.read_images("../shared/data/pets/images", label="filename", size=32)
    >>> summary = summarize_images(df)
    >>> (summary.num_files, summary.num_labels, summary.num_errors)
    (600, 3, 0)
    """
    label = F.col("label") if "label" in df.columns else F.lit(None).cast("string")
    failed = F.when(F.col("error").isNotNull(), F.struct("path", "error"))
    rows = (
        df.groupBy(label.alias("label"))
        .agg(
            F.count(F.lit(1)).alias("num_files"),
            F.count("error").alias("num_errors"),
            F.slice(F.collect_list(failed), 1, MAX_ERRORS_LISTED).alias("errors"),
        )
        .orderBy("label")
        .collect()
    )
    labels = [LabelCount(row["label"], row["num_files"], row["num_errors"]) for row in rows]
    errors = [
        {"path": item["path"], "error": item["error"]} for row in rows for item in row["errors"]
    ][:MAX_ERRORS_LISTED]
    num_files = sum(entry.num_files for entry in labels)
    num_errors = sum(entry.num_errors for entry in labels)
    return ImageSummary(num_files, num_files - num_errors, num_errors, labels, errors)


def format_summary(summary: ImageSummary) -> str:
    """The summary as a small text table, followed by the errors found."""
    width = max([5] + [len(str(entry.label)) for entry in summary.labels])
    lines = [f"{'label':<{width}}  {'files':>7}  {'errors':>7}"]
    for entry in summary.labels:
        name = "(none)" if entry.label is None else entry.label
        lines.append(f"{name:<{width}}  {entry.num_files:>7}  {entry.num_errors:>7}")
    lines.append(f"{'total':<{width}}  {summary.num_files:>7}  {summary.num_errors:>7}")
    if summary.errors:
        shown = len(summary.errors)
        lines.append(f"Unreadable files ({summary.num_errors}, first {shown} shown):")
        lines.extend(f"  {item['path']}: {item['error']}" for item in summary.errors)
    return "\n".join(lines)

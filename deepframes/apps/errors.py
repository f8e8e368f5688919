"""Bad input to the application: one readable line, exit status 2, nothing written."""

from __future__ import annotations

from collections.abc import Mapping


class InputError(ValueError):
    """The user's input cannot work (no images, one class, a split outside (0, 1), ...).

    The command line reports it in one line and exits with status 2.
    """


def check_classes(counts: Mapping[str, int], what: str) -> None:
    """Raise ``InputError`` unless there are 2+ classes with 2+ examples each.

    >>> check_classes({"cat": 3, "dog": 2}, "features.parquet")
    >>> check_classes({"cat": 3}, "photos/")
    Traceback (most recent call last):
    ...
    deepframes.apps.errors.InputError: photos/ has a single class ('cat'); expected at least 2 classes. Add images of another class, or check --label.
    """
    if not counts:
        raise InputError(f"{what} has no labelled examples; expected images with labels. Check the path and --label.")
    if len(counts) < 2:
        (only,) = counts
        raise InputError(
            f"{what} has a single class ({only!r}); expected at least 2 classes. Add images of another "
            "class, or check --label."
        )
    small = sorted(name for name, count in counts.items() if count < 2)
    if small:
        raise InputError(
            f"{what}: class {small[0]!r} has {counts[small[0]]} example; every class needs at least 2 "
            f"(one to train, one to test). Add images or remove the class{'es' if len(small) > 1 else ''} "
            f"{', '.join(repr(name) for name in small)}."
        )

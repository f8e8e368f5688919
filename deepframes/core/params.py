"""Typed, validated Params for the stages: one constraint table per class, one error type, and the
``getX``/``setX`` pair pyspark.ml gives every Param, made for each Param that lacks one.

A stage lists what each of its Params accepts in ``_parameter_constraints`` (scikit-learn's
``_parameter_constraints`` is the model); a class's table adds to its bases' (a mixin declares its
own Params' entries once). Every value is checked where it is set: in ``__init__``/``setParams``,
``setX``, ``copy(extra)`` (so a ``CrossValidator`` grid too) and ``load``. Checks that need the
data (a column's type, ``batchSize`` against ``numSlots``) stay in ``_fit``/``_transform``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Union

from pyspark.ml.param import Param, Params, TypeConverters


class InvalidParameterError(ValueError, TypeError):
    """A Param (or argument) value that its owner does not accept.

    Both a ``ValueError`` and a ``TypeError`` (as scikit-learn's), so code catching either of
    pyspark's own conversion errors catches it too. The message follows one template:

    >>> from deepframes import ImageFeaturizer
    >>> ImageFeaturizer(batchSize=0)
    Traceback (most recent call last):
    ...
    deepframes.core.params.InvalidParameterError: The 'batchSize' parameter of ImageFeaturizer must be a positive integer. Got 0 instead.
    """


@dataclass(frozen=True)
class Constraint:
    """What a Param accepts: a description that completes "must be ..." and its test.

    ``hint``, when given, ends the message of a value that no constraint accepts (how to fix it).
    """

    description: str
    accepts: Callable[[Any], bool]
    hint: str = ""


Constraints = Union[Constraint, tuple[Constraint, ...]]


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        return False
    return math.isfinite(value)


def integer(low: int | None = None, high: int | None = None) -> Constraint:
    """An int in ``[low, high]`` (a bound of None: unbounded)."""
    if low == 1 and high is None:
        description = "a positive integer"
    elif low == 0 and high is None:
        description = "a non-negative integer"
    elif low is None and high is None:
        description = "an integer"
    else:
        description = f"an integer in {'(-inf' if low is None else f'[{low}'}, {'inf)' if high is None else f'{high}]'}"
    return Constraint(description, lambda value: _is_number(value, int) and (low is None or value >= low)
                      and (high is None or value <= high))


def real(low: float | None = None, high: float | None = None, closed: str = "both") -> Constraint:
    """A finite float (or int) between ``low`` and ``high``; ``closed``: "both", "left",
    "right" or "neither" end included."""
    left, right = closed in ("both", "left"), closed in ("both", "right")
    if low == 0 and high is None and not left:
        description = "a positive float"
    else:
        description = (f"a float in {'[' if left and low is not None else '('}{'-inf' if low is None else low}, "
                       f"{'inf' if high is None else high}{']' if right and high is not None else ')'}")

    def accepts(value: Any) -> bool:
        if not _is_number(value, float):
            return False
        above = low is None or (value >= low if left else value > low)
        below = high is None or (value <= high if right else value < high)
        return above and below

    return Constraint(description, accepts)


def one_of(*values: Any, hint: str = "") -> Constraint:
    """One of ``values`` (None among them allows None)."""
    return Constraint(f"one of {list(values)}", lambda value: any(value == v and type(value) is type(v) for v in values),
                      hint)


def function(description: str, accepts: Callable[[Any], bool] = callable) -> Constraint:
    """A callable (or what ``accepts`` says), described as ``description``."""
    return Constraint(description, accepts)


STRING = Constraint("a non-empty string", lambda value: isinstance(value, str) and bool(value))
ANY_STRING = Constraint("a string", lambda value: isinstance(value, str))
STRINGS = Constraint("a list of strings", lambda value: isinstance(value, list)
                     and all(isinstance(item, str) for item in value))
COLUMNS = Constraint("a non-empty list of column names", lambda value: isinstance(value, list) and bool(value)
                     and all(isinstance(item, str) and item for item in value))
BOOLEAN = Constraint("a boolean", lambda value: isinstance(value, bool))
NONE = Constraint("None", lambda value: value is None)
DICT = Constraint("a dict", lambda value: isinstance(value, Mapping))
POSITIVE_INTS = Constraint("a list of positive integers", lambda value: isinstance(value, list) and bool(value)
                           and all(_is_number(item, int) and item > 0 for item in value))


def describe(constraints: Constraints) -> str:
    """"a, b or c": what the constraints accept together."""
    parts = [constraint.description for constraint in _as_tuple(constraints)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _as_tuple(constraints: Constraints) -> tuple[Constraint, ...]:
    return constraints if isinstance(constraints, tuple) else (constraints,)


def shown(value: Any) -> str:
    """A received value in one short line: plain values as Python writes them, other objects by type."""
    if value is None or isinstance(value, (bool, int, float, str, list, tuple, dict)):
        text = repr(value)
        return text if len(text) <= 80 and "\n" not in text else f"{text.splitlines()[0][:60]}..."
    name = getattr(value, "__qualname__", None)
    if callable(value) and isinstance(name, str):
        return f"the function {name!r}" if not isinstance(value, type) else f"the class {name!r}"
    return f"a {type(value).__name__} object"


def invalid(owner: str, name: str, value: Any, constraints: Constraints) -> InvalidParameterError:
    """The one error of a value that ``constraints`` does not accept."""
    hints = [constraint.hint for constraint in _as_tuple(constraints) if constraint.hint]
    message = f"The {name!r} parameter of {owner} must be {describe(constraints)}. Got {shown(value)} instead."
    return InvalidParameterError(message + (f" {hints[0]}" if hints else ""))


def check_value(owner: str, name: str, value: Any, constraints: Constraints) -> Any:
    """``value`` if one of ``constraints`` accepts it, else :class:`InvalidParameterError`; for a
    function's arguments as for Params.

    >>> check_value("near_duplicates", "threshold", 1.5, real(0, 1, closed="right"))
    Traceback (most recent call last):
    ...
    deepframes.core.params.InvalidParameterError: The 'threshold' parameter of near_duplicates must be a float in (0, 1]. Got 1.5 instead.
    """
    if not any(constraint.accepts(value) for constraint in _as_tuple(constraints)):
        raise invalid(owner, name, value, constraints)
    return value


_NUMERIC_CONVERTERS = (TypeConverters.toInt, TypeConverters.toFloat)


class ValidatedParams(Params):
    """Mixin of the stages: values checked against the class's constraint table when set, and
    a ``getX``/``setX`` for every Param (pyspark's shared Params have only ``getX``).

    A subclass declares ``_parameter_constraints = {"batchSize": integer(1), ...}`` for the Params
    it introduces or constrains differently; ``parameter_constraints()`` is the merged table.
    """

    # pyspark.ml's shared Params, as the stages use them
    _parameter_constraints: ClassVar[dict[str, Constraints]] = {
        "inputCol": STRING, "outputCol": STRING, "inputCols": COLUMNS, "outputCols": COLUMNS,
        "featuresCol": STRING, "labelCol": STRING, "predictionCol": STRING, "probabilityCol": STRING,
        "seed": integer(),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[str, Constraints] = {}
        for klass in reversed(cls.__mro__):
            table.update(vars(klass).get("_parameter_constraints", {}))
        cls._merged_constraints = table
        add_accessors(cls)

    @classmethod
    def parameter_constraints(cls) -> dict[str, Constraints]:
        """Param name -> what it accepts, this class's table over its bases'."""
        return dict(getattr(cls, "_merged_constraints", cls._parameter_constraints))

    def _checked(self, param: Param, value: Any) -> Any:
        """``value`` converted by the Param's type converter and checked against the table."""
        owner = type(self).__name__
        constraints = self.parameter_constraints().get(param.name, Constraint(param.doc, lambda _: True))
        converted = value
        if value is not None:
            # pyspark's toInt and toFloat take True for 1: a boolean is never a count or a rate.
            if isinstance(value, bool) and param.typeConverter in _NUMERIC_CONVERTERS:
                raise invalid(owner, param.name, value, constraints)
            try:
                converted = param.typeConverter(value)
            except (TypeError, ValueError):
                raise invalid(owner, param.name, value, constraints) from None
        if not any(constraint.accepts(converted) for constraint in _as_tuple(constraints)):
            raise invalid(owner, param.name, value, constraints)  # as received, not as converted
        return converted

    def _set(self, **kwargs: Any) -> Any:
        return super()._set(**{name: self._checked(getattr(self, name), value) for name, value in kwargs.items()})

    def set(self, param: Param, value: Any) -> None:
        """Sets a Param (as ``_set``: converted and checked); what ``load`` calls."""
        self._shouldOwn(param)
        super().set(param, self._checked(param, value))

    if TYPE_CHECKING:  # the getX/setX made by add_accessors, which a type checker cannot see
        def __getattr__(self, name: str) -> Any: ...


def add_accessors(cls: type) -> None:
    """Give ``cls`` a ``getX`` and a ``setX`` for each of its Params that has none."""
    for name in dir(cls):
        if not isinstance(getattr(cls, name, None), Param):
            continue
        title = name[0].upper() + name[1:]
        if not hasattr(cls, "get" + title):
            setattr(cls, "get" + title, _getter(cls, name, title))
        if not hasattr(cls, "set" + title):
            setattr(cls, "set" + title, _setter(cls, name, title))


def _getter(cls: type, name: str, title: str) -> Callable[[Params], Any]:
    def getter(self: Params) -> Any:
        return self.getOrDefault(name)

    getter.__name__, getter.__qualname__ = f"get{title}", f"{cls.__qualname__}.get{title}"
    getter.__doc__ = f"Gets the value of :py:attr:`{name}` or its default value."
    return getter


def _setter(cls: type, name: str, title: str) -> Callable[[Params, Any], Any]:
    def setter(self: Params, value: Any) -> Any:
        return self._set(**{name: value})

    setter.__name__, setter.__qualname__ = f"set{title}", f"{cls.__qualname__}.set{title}"
    setter.__doc__ = f"Sets the value of :py:attr:`{name}` (checked as the class's constraint table says)."
    return setter


__all__ = ["ANY_STRING", "BOOLEAN", "COLUMNS", "DICT", "NONE", "POSITIVE_INTS", "STRING", "STRINGS",
           "Constraint", "InvalidParameterError", "ValidatedParams", "add_accessors", "check_value", "describe",
           "function", "integer", "invalid", "one_of", "real", "shown"]

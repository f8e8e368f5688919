"""Drop-in replacements for the distributed runners deepframes succeeds: change one import.

``from spark_tensorflow_distributor import MirroredStrategyRunner`` becomes
``from deepframes.compat import MirroredStrategyRunner``.
"""

from __future__ import annotations

from .tensorflow_distributor import MirroredStrategyRunner as MirroredStrategyRunner

__all__ = ["MirroredStrategyRunner"]

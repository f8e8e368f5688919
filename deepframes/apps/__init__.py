"""The breed-recognition application on deepframes: featurize, study, train, predict, demo.

Each verb of the ``deepframes`` command is a function here (the CLI only parses and prints):
``featurize_images``, ``run_study``, ``train_classifier``, ``predict_images``, ``run_demo``.
"""

from __future__ import annotations

from .errors import InputError as InputError

__all__ = ["InputError"]

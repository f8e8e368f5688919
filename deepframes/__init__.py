"""deepframes: deep learning on Apache Spark DataFrames.

Importing deepframes is cheap: it never imports TensorFlow, PyTorch or ONNX Runtime.
"""

from __future__ import annotations

from ._java import JavaNotFoundError as JavaNotFoundError
from .images import read_images as read_images
from .session import session as session

__version__ = "0.1.0"

__all__ = ["JavaNotFoundError", "read_images", "session", "__version__"]

"""The image struct column, laid out exactly as Spark's ``ImageSchema`` so Spark's tools read it."""

from __future__ import annotations

from pyspark.sql.types import BinaryType, IntegerType, StringType, StructField, StructType

# OpenCV type codes Spark's ImageSchema uses for 8-bit images with 1, 3 and 4 channels.
OCV_MODES = {1: 0, 3: 16, 4: 24}

IMAGE_FIELDS = ("origin", "height", "width", "nChannels", "mode", "data")

IMAGE_STRUCT = StructType(
    [
        StructField("origin", StringType(), True),
        StructField("height", IntegerType(), True),
        StructField("width", IntegerType(), True),
        StructField("nChannels", IntegerType(), True),
        StructField("mode", IntegerType(), True),
        StructField("data", BinaryType(), True),
    ]
)


def ocv_mode(num_channels: int) -> int:
    """The OpenCV mode code for an 8-bit image with ``num_channels`` channels.

    >>> ocv_mode(3)
    16
    """
    try:
        return OCV_MODES[num_channels]
    except KeyError:
        raise ValueError(
            f"Images must have 1, 3 or 4 channels. Received: {num_channels} channels."
        ) from None

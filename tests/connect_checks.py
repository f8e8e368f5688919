"""Run as a script (``python -m tests.connect_checks OUT.json``): deepframes through a Spark Connect
session on a local Connect server. A separate process, because a Connect session switches PySpark
into Connect mode for the whole process; the tests compare what it writes with local[2]."""

from __future__ import annotations

import json
import sys
import traceback

import numpy as np

import deepframes
from tests.conftest import PETS_IMAGES, SHARED

SQUEEZENET = str(SHARED / "models" / "squeezenet1.1.onnx")
IMAGES = str(PETS_IMAGES / "Bengal_1?.jpg")


def featurize(spark) -> dict:
    images = deepframes.read_images(IMAGES, size=(224, 224), spark=spark)
    features = deepframes.ImageFeaturizer(weights=SQUEEZENET, batchSize=4).transform(images)
    return {row.path: row.features.toArray().tolist() for row in features.select("path", "features").collect()}


def predict(spark) -> dict:
    images = deepframes.read_images(IMAGES, size=(224, 224), spark=spark)
    predictions = deepframes.ImagePredictor(weights=SQUEEZENET, topK=2).transform(images)
    return {row.path: [cell.label for cell in row.predictions] for row in predictions.collect()}


def sql_function(spark) -> dict:
    deepframes.register_udf(spark, "imagenet_class", deepframes.ImagePredictor(weights=SQUEEZENET))
    deepframes.read_images(IMAGES, size=(224, 224), spark=spark).createOrReplaceTempView("pets")
    return {row.path: row.label for row in spark.sql("SELECT path, imagenet_class(image) AS label FROM pets").collect()}


def blocks(spark) -> dict:
    df = spark.createDataFrame([(float(i),) for i in range(10)], "x double")
    doubled = deepframes.map_blocks(lambda block: {"y": block["x"] * 2}, df)
    total = deepframes.reduce_blocks(lambda block: {"x": np.sum(block["x"])}, df)
    return {"doubled": sorted(row.y for row in doubled.collect()), "total": float(np.asarray(total["x"]))}


def distributor(spark) -> dict:
    from deepframes.distributed import Distributor

    try:
        Distributor(2).run(abs, -1)
    except ValueError as error:
        refused = str(error)
    local = Distributor(2, local_mode=True).run(abs, -1)
    return {"refused": refused, "local_mode": local}


CHECKS = {"distributor": distributor, "featurize": featurize, "predict": predict, "sql": sql_function, "blocks": blocks}


def main(out: str) -> None:
    spark = deepframes.session(remote="local[2]", **{"spark.ui.showConsoleProgress": "false"})
    results = {"session_type": type(spark).__module__}
    for name, check in CHECKS.items():
        try:
            results[name] = {"ok": True, "value": check(spark)}
        except Exception as error:  # noqa: BLE001 - each check reports its own failure
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:2000],
                             "traceback": traceback.format_exc()[-3000:]}
    with open(out, "w") as sink:
        json.dump(results, sink)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])

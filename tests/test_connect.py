"""deepframes through Spark Connect (a local Connect server from the pip package): read_images,
the inference stages, register_udf and the blocks functions give what local[2] gives."""

from __future__ import annotations

import numpy as np
import pytest

import deepframes
from tests import connect_checks
from tests.conftest import script_results

pytest.importorskip("grpc_status", reason="Spark Connect needs pyspark[connect] (grpcio-status)")
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def connect_results(tmp_path_factory) -> dict:
    return script_results("tests.connect_checks", tmp_path_factory.mktemp("connect"))


def _value(results: dict, name: str):
    result = results[name]
    assert result["ok"], result.get("traceback")
    return result["value"]


def test_the_session_is_a_connect_session(connect_results):
    assert connect_results["session_type"].startswith("pyspark.sql.connect")


def test_featurizer_over_connect_matches_local(connect_results, spark):
    found = _value(connect_results, "featurize")
    expected = connect_checks.featurize(spark)
    assert sorted(found) == sorted(expected) and len(found) == 10
    assert max(float(np.max(np.abs(np.asarray(found[p]) - expected[p]))) for p in expected) <= 1e-5


def test_predictor_and_sql_function_over_connect_match_local(connect_results, spark):
    assert _value(connect_results, "predict") == connect_checks.predict(spark)
    assert _value(connect_results, "sql") == connect_checks.sql_function(spark)


def test_blocks_over_connect(connect_results):
    assert _value(connect_results, "blocks") == {"doubled": [2.0 * i for i in range(10)], "total": 45.0}


def test_distributor_over_connect_says_it_needs_a_classic_session(connect_results):
    result = _value(connect_results, "distributor")
    assert "need a classic SparkSession" in result["refused"] and "local_mode=True" in result["refused"]
    assert result["local_mode"] == 1


def test_an_endpoint_that_does_not_answer_is_one_error_in_seconds():
    import time

    started = time.monotonic()
    with pytest.raises(ValueError, match=r"sc://127.0.0.1:1 does not answer.*Spark Connect server"):
        deepframes.session(remote="sc://127.0.0.1:1")
    assert time.monotonic() - started < 30

"""spark-tensorflow-distributor's TLS guarantee: no unencrypted training on a cluster that asks
for encryption, unless a setting says so; and the runner's ``sc`` attribute."""

from __future__ import annotations

import logging

import pytest

import deepframes
from deepframes.compat import MirroredStrategyRunner
from deepframes.distributed.preflight import check_encryption
from tests.conftest import LOCAL_MASTER
from tests.distributed.conftest import FakeSpark

RUNNER_KEY = "tensorflow.spark.distributor.ignoreSsl"
DISTRIBUTOR_KEY = "spark.deepframes.distributor.ignoreSsl"


def test_check_encryption_refuses_tls_clusters_unless_told():
    with pytest.raises(ValueError, match=rf"TLS encryption enabled \(spark.ssl.enabled=true\), but Runner does not encrypt.*Expected spark.ssl.enabled=false, or {RUNNER_KEY}=true.*local_mode=True"):
        check_encryption(FakeSpark({"spark.ssl.enabled": "TRUE"}), "Runner", RUNNER_KEY)
    # the other runner's setting does not count
    with pytest.raises(ValueError, match=DISTRIBUTOR_KEY):
        check_encryption(FakeSpark({"spark.ssl.enabled": "true", RUNNER_KEY: "true"}), "Distributor", DISTRIBUTOR_KEY)
    check_encryption(FakeSpark({}), "Runner", RUNNER_KEY)
    check_encryption(FakeSpark({"spark.ssl.enabled": "false"}), "Runner", RUNNER_KEY)


def test_check_encryption_override_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="deepframes.distributed.preflight"):
        check_encryption(FakeSpark({"spark.ssl.enabled": "true", RUNNER_KEY: "true"}), "Runner", RUNNER_KEY)
    assert f"Runner does not encrypt data in transit; {RUNNER_KEY}=true overrides this" in caplog.text


@pytest.fixture
def tls_spark(spark_sessions):
    """local[2] configured as a TLS cluster (its UI off: it would need a keystore), where the
    Distributor's override is set but the runner's is not."""
    return spark_sessions.get(
        LOCAL_MASTER, **{"spark.ssl.enabled": "true", "spark.ui.enabled": "false", DISTRIBUTOR_KEY: "true"}
    )


def _world_size(ctx):
    return ctx.world_size


def _answer():
    return 42


def test_tls_cluster_runner_refused_distributor_overridden(tls_spark, caplog):
    runner = MirroredStrategyRunner(num_slots=2, use_gpu=False, use_custom_strategy=True)
    assert runner.sc is tls_spark.sparkContext
    with pytest.raises(ValueError, match=rf"MirroredStrategyRunner does not encrypt.*{RUNNER_KEY}=true"):
        runner.run(_answer)
    with caplog.at_level(logging.WARNING, logger="deepframes.distributed.preflight"):
        assert deepframes.Distributor(2).run(_world_size) == 2
    assert f"Distributor does not encrypt data in transit; {DISTRIBUTOR_KEY}=true overrides" in caplog.text


def test_tls_cluster_local_mode_needs_no_override(tls_spark):
    # Ranks on the driver's machine talk over loopback only, as the original's local mode did.
    runner = MirroredStrategyRunner(num_slots=1, local_mode=True, use_gpu=False, use_custom_strategy=True)
    assert runner.run(_answer) == 42


def test_runner_sc_is_the_running_context(spark):
    assert MirroredStrategyRunner(num_slots=1, use_gpu=False).sc is spark.sparkContext

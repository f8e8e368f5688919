"""Shipping the Python environment: packed once (cached by content), unpacked on executors that
cannot import our packages, and one clear error when it cannot be packed."""

from __future__ import annotations

import subprocess
import sys

import pytest

import deepframes
from deepframes import shipping
from tests.conftest import STANDALONE_CONF, wait_for_executors

pytest.importorskip("venv_pack", reason="ship_env needs venv-pack (pip install 'deepframes[cluster]')")


@pytest.fixture(scope="module")
def small_env(tmp_path_factory):
    """A bare venv (no numpy, no deepframes) holding one module that only it has."""
    env = tmp_path_factory.mktemp("envs") / "small"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = env.glob("lib/python*/site-packages")
    (site / "shipped_probe.py").write_text("VALUE = 'from the shipped environment'\n")
    return env


def test_pack_is_cached_by_content(small_env, tmp_path, monkeypatch):
    monkeypatch.setenv(shipping.CACHE_ENV_VAR, str(tmp_path / "cache"))
    first = shipping.pack_environment(str(small_env))
    assert shipping.pack_environment(str(small_env)) == first
    assert len(list((tmp_path / "cache").iterdir())) == 1
    (next(small_env.glob("lib/python*/site-packages")) / "other-1.0.dist-info").mkdir()
    (next(small_env.glob("lib/python*/site-packages")) / "other-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n")
    assert shipping.pack_environment(str(small_env)) != first


def test_an_environment_that_cannot_be_packed_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv(shipping.CACHE_ENV_VAR, str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"is not a virtual environment .* Pass the environment's folder"):
        shipping.pack_environment(str(tmp_path))
    # The development environment holds deepframes installed editable: refused before any packing.
    with pytest.raises(ValueError, match=r"cannot be packed: .*deepframes.* editable .*pip install \."):
        shipping.pack_environment(sys.prefix)
    assert not (tmp_path / "cache").exists()


def test_ship_env_on_a_local_master_says_to_drop_it():
    with pytest.raises(ValueError, match=r"master local\[2\] runs them here.*Drop ship_env"):
        deepframes.session("local[2]", ship_env=True)


@pytest.mark.cluster
@pytest.mark.slow
def test_executors_run_the_shipped_environment(spark_sessions, standalone_cluster, small_env, tmp_path, monkeypatch):
    monkeypatch.setenv(shipping.CACHE_ENV_VAR, str(tmp_path / "cache"))
    spark_sessions.stop()
    spark = deepframes.session(standalone_cluster["master_url"], ship_env=str(small_env), **STANDALONE_CONF)
    try:
        wait_for_executors(spark, 2)

        def probe(_):
            import importlib.util
            import sys

            import shipped_probe

            return sys.executable, shipped_probe.VALUE, importlib.util.find_spec("numpy") is None

        found = set(spark.sparkContext.parallelize(range(4), 4).map(probe).collect())
    finally:
        spark.stop()
    assert {(python.endswith("environment/bin/python"), value, no_numpy) for python, value, no_numpy in found} \
        == {(True, "from the shipped environment", True)}


def test_cli_ship_env_on_a_local_master_exits_2(tmp_path):
    from tests.conftest import deepframes_command

    result = deepframes_command("images", str(tmp_path), "--ship-env", "--master", "local[2]")
    assert result.returncode == 2 and "Drop ship_env" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

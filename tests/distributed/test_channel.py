"""The driver's log channel: only clients that know the run's secret are heard."""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest

from deepframes.distributed import Distributor, RankFailedError, channel, cluster
from deepframes.distributed.channel import ChannelClient, ChannelServer
from tests.distributed import workloads


def test_channel_delivers_lines_from_clients_with_the_secret():
    received = []
    with ChannelServer("127.0.0.1", received.append) as server:
        with ChannelClient(server.address, rank=3) as client:
            client.send_line("stderr", "a line")
            client.send({"kind": "failure", "error_type": "ValueError"})
        assert server.wait_idle(timeout=5)
    assert received == [
        {"rank": 3, "kind": "line", "stream": "stderr", "line": "a line"},
        {"rank": 3, "kind": "failure", "error_type": "ValueError"},
    ]


def test_channel_rendezvous_gives_every_rank_the_list_in_rank_order():
    with (
        ChannelServer("127.0.0.1", print, world_size=2) as server,
        ChannelClient(server.address, 1) as one,
        ChannelClient(server.address, 0) as zero,
    ):
        results = {}
        thread = threading.Thread(
            target=lambda: results.update(one=one.gather("b", 10))
        )
        thread.start()
        results["zero"] = zero.gather("a", 10)
        thread.join()
    assert results == {"zero": ["a", "b"], "one": ["a", "b"]}


def test_channel_rendezvous_falls_back_for_all_when_a_rank_is_missing():
    with (
        ChannelServer("127.0.0.1", print, world_size=2) as server,
        ChannelClient(server.address, 0) as zero,
        ChannelClient(server.address, 1) as late,
    ):
        assert zero.gather("a", patience=0.3) is None
        assert late.gather("b", patience=10) is None


def test_channel_ignores_clients_with_a_wrong_secret(caplog):
    received = []
    with ChannelServer("127.0.0.1", received.append) as server:
        forged = dataclasses.replace(server.address, secret=b"not the secret")
        with caplog.at_level(logging.WARNING, logger=channel.__name__):
            with ChannelClient(forged, rank=0) as client:
                client.send_line("stdout", "let me in")
            assert server.wait_idle(timeout=5)
    assert received == []
    assert "wrong run secret" in caplog.text


def test_distributor_runs_without_channel_and_warns(spark, monkeypatch, caplog):
    def refuse(*args):
        raise OSError("no port for you")

    monkeypatch.setattr(cluster, "ChannelServer", refuse)
    with caplog.at_level(logging.WARNING, logger=cluster.__name__):
        assert Distributor(2).run(workloads.raise_on_rank, failing_rank=-1) == 0
    assert (
        "The log channel could not open" in caplog.text
        and "no port for you" in caplog.text
    )


def test_rank_failure_without_channel_keeps_rank_type_and_traceback(spark, monkeypatch):
    def refuse(*args):
        raise OSError("no port for you")

    monkeypatch.setattr(cluster, "ChannelServer", refuse)
    with pytest.raises(RankFailedError) as failure:
        Distributor(2).run(workloads.raise_on_rank, failing_rank=1)
    error = failure.value
    assert (error.rank, error.error_type) == (1, "ValueError")
    assert "boom on rank 1" in str(error).splitlines()[0]
    assert "raise_on_rank" in error.remote_traceback  # the rank's own frames, not the JVM's

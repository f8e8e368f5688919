"""`deepframes serve`'s options: the pixel limit's spelling, and a port that cannot be had."""

from __future__ import annotations

import socket

import pytest

from deepframes.cli import _pixels, main


@pytest.mark.parametrize("text, pixels", [("50000000", 50_000_000), ("50M", 50_000_000), ("12.5mp", 12_500_000)])
def test_serve_max_pixels_takes_counts_and_millions(text, pixels):
    assert _pixels(text) == pixels


@pytest.mark.parametrize("text", ["0", "0.0000001M", "lots"])
def test_serve_max_pixels_refuses_nonsense_with_usage_error(text, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["serve", "some-model", "--max-pixels", text])
    assert caught.value.code == 2
    assert "expected a positive number of pixels such as 50000000 or 50M" in capsys.readouterr().err


def test_serve_busy_port_fails_in_one_line_before_loading_the_model(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The model folder does not even exist: the port is claimed first, so that is never reached.
        status = main(["serve", str(tmp_path / "no-model"), "--port", str(port)])
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert captured.err == (f"deepframes serve: error: port {port} on 127.0.0.1 is already in use by another program: "
                            "stop it, or pick another port with --port.\n")


def test_claimed_socket_says_it_is_tcp_so_asyncio_turns_nagle_off():
    from deepframes.serve.server import claim_port

    # With proto 0, asyncio leaves Nagle's algorithm on and each answer waits 40 ms (delayed ACK).
    with claim_port("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP

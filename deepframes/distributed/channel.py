"""The driver's channel: ranks meet there (rendezvous) and stream tagged lines to it over TCP;
tasks may also ask it a question and wait for its answer (``ChannelClient.ask``).

Each connection proves it knows the run's secret (HMAC of a server nonce) before anything it sends
is read; messages are length-prefixed JSON, never pickles, so a stray client cannot run code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

logger = logging.getLogger(__name__)

_NONCE_BYTES = 16
_HEADER = struct.Struct("!I")
_MAX_MESSAGE_BYTES = 1 << 20
_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ChannelAddress:
    """Where ranks send their lines, and the secret that admits them."""

    host: str
    port: int
    secret: bytes


def _proof(secret: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, nonce, hashlib.sha256).digest()


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(body)) + body)


def _read_message(sock: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_read_exact(sock, _HEADER.size))
    if size > _MAX_MESSAGE_BYTES:
        raise ConnectionError(f"message of {size} bytes exceeds {_MAX_MESSAGE_BYTES}")
    return json.loads(_read_exact(sock, size))


class _EndpointBoard:
    """Collects every rank's endpoint, then answers all ranks alike: the full list, or ``None``
    (use Spark's allGather instead) once any rank gave up waiting. One decision for everyone."""

    def __init__(self, world_size: int) -> None:
        self._world_size = world_size
        self._lock = threading.Lock()
        self._entries: dict[int, str] = {}
        self._waiting: list[socket.socket] = []
        self._decision: dict[str, Any] | None = None

    def post(self, rank: int, endpoint: str, connection: socket.socket) -> None:
        with self._lock:
            self._entries[rank] = endpoint
            self._waiting.append(connection)
            if self._decision is None and len(self._entries) == self._world_size:
                ordered = [self._entries[index] for index in range(self._world_size)]
                self._decide({"kind": "endpoints", "endpoints": ordered})
            elif self._decision is not None:
                _send_message(connection, self._decision)

    def abandon(self) -> None:
        with self._lock:
            if self._decision is None:
                self._decide({"kind": "endpoints", "endpoints": None})

    def _decide(self, decision: dict[str, Any]) -> None:
        self._decision = decision
        for connection in self._waiting:
            try:
                _send_message(connection, decision)
            except OSError:
                pass


def print_line(message: dict[str, Any]) -> None:
    """Write a rank's line on the driver's matching stream, tagged ``[rank N]``.

    Written to ``sys.stdout``/``sys.stderr`` rather than a logger: notebooks and terminals show
    training output there, as they would for a local run.
    """
    stream = sys.stderr if message.get("stream") == "stderr" else sys.stdout
    stream.write(f"[rank {message['rank']}] {message['line']}\n")
    stream.flush()


class ChannelServer:
    """A threaded TCP server on the driver; ``on_message`` gets each authenticated message, and
    what it returns other than None goes back to the sender as the answer to its ``ask``.

    Examples
    --------
    >>> received = []
    >>> with ChannelServer("127.0.0.1", received.append) as server:
    ...     with ChannelClient(server.address, rank=0) as client:
    ...         client.send_line("stdout", "hello")
    ...     server.wait_idle(timeout=5)
    True
    >>> received[0]["line"], received[0]["rank"]
    ('hello', 0)
    >>> with ChannelServer("127.0.0.1", received.append, world_size=1) as server:
    ...     with ChannelClient(server.address, rank=0) as client:
    ...         client.gather("host|1|2|3", patience=5)
    ['host|1|2|3']
    >>> with ChannelServer("127.0.0.1", lambda message: {"twice": 2 * message["number"]}) as server:
    ...     with ChannelClient(server.address, rank=0) as client:
    ...         client.ask({"kind": "question", "number": 21}, timeout=5)["twice"]
    42
    """

    def __init__(
        self,
        host: str,
        on_message: Callable[[dict[str, Any]], None],
        world_size: int = 0,
    ) -> None:
        self._on_message = on_message
        self._board = _EndpointBoard(world_size)
        self._secret = os.urandom(32)
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(None)
        self.address = ChannelAddress(
            host, self._listener.getsockname()[1], self._secret
        )
        self._closed = threading.Event()
        self._open_connections = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(
            target=self._accept_loop, name="deepframes-channel", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._idle:
                self._open_connections += 1
            threading.Thread(
                target=self._serve, args=(connection,), daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            with connection:
                connection.settimeout(_CONNECT_TIMEOUT_S)
                nonce = os.urandom(_NONCE_BYTES)
                connection.sendall(nonce)
                if not hmac.compare_digest(
                    _read_exact(connection, 32), _proof(self._secret, nonce)
                ):
                    logger.warning(
                        "Rejected a connection to the log channel: wrong run secret."
                    )
                    return
                connection.settimeout(None)
                while True:
                    self._dispatch(_read_message(connection), connection)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            with self._idle:
                self._open_connections -= 1
                self._idle.notify_all()

    def _dispatch(self, message: dict[str, Any], connection: socket.socket) -> None:
        kind = message.get("kind")
        if kind == "endpoint":
            self._board.post(int(message["rank"]), str(message["endpoint"]), connection)
        elif kind == "abandon":
            self._board.abandon()
        else:
            answer = self._on_message(message)
            if answer is not None:
                _send_message(connection, answer)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every rank's connection has closed (its last lines are in); True if so."""
        with self._idle:
            return self._idle.wait_for(lambda: self._open_connections == 0, timeout)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


class ChannelClient:
    """A rank's end of the channel; every send is thread-safe and a broken channel is ignored."""

    def __init__(self, address: ChannelAddress, rank: int) -> None:
        self.rank = rank
        self._lock = threading.Lock()
        self._sock = socket.create_connection(
            (address.host, address.port), timeout=_CONNECT_TIMEOUT_S
        )
        try:
            nonce = _read_exact(self._sock, _NONCE_BYTES)
            self._sock.sendall(_proof(address.secret, nonce))
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(None)
        self._broken = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._broken:
                return
            try:
                _send_message(self._sock, {"rank": self.rank, **message})
            except OSError:
                self._broken = True

    def gather(self, endpoint: str, patience: float) -> list[str] | None:
        """Every rank's ``endpoint`` in rank order, through the driver (Spark's allGather makes
        a waiting task poll once a second). ``None`` means all ranks must use allGather: this one
        could not post, or some rank did not post within ``patience`` seconds."""
        self.send({"kind": "endpoint", "endpoint": endpoint})
        if self._broken:
            return None
        try:
            self._sock.settimeout(patience)
            try:
                reply = _read_message(self._sock)
            except TimeoutError:
                self.send({"kind": "abandon"})
                self._sock.settimeout(None)
                reply = _read_message(self._sock)
            self._sock.settimeout(None)
        except (OSError, ValueError) as error:
            # Other ranks may already have the list: falling back alone would hang the run.
            raise ConnectionError(
                f"lost the driver's channel during the rendezvous: {error}"
            ) from error
        return reply["endpoints"]

    def ask(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``message`` and wait up to ``timeout`` seconds for the driver's answer.

        Raises
        ------
        ConnectionError
            When the channel broke or the driver did not answer in time.
        """
        with self._lock:
            try:
                _send_message(self._sock, {"rank": self.rank, **message})
                self._sock.settimeout(timeout)
                try:
                    return _read_message(self._sock)
                finally:
                    self._sock.settimeout(None)
            except (OSError, ValueError) as error:
                self._broken = True
                raise ConnectionError(f"the driver's channel did not answer: {error}") from error

    def send_line(self, stream: str, line: str) -> None:
        self.send({"kind": "line", "stream": stream, "line": line})

    def close(self) -> None:
        with self._lock:
            self._sock.close()

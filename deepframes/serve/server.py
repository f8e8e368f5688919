"""Running the web service: its port claimed first, so that a busy port is one line and nothing
else happens, then uvicorn serving on that very socket."""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class ListenError(OSError):
    """The service cannot listen where it was asked to; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def claim_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), or ``ListenError``.

    >>> sock = claim_port("127.0.0.1", 0)
    >>> taken = sock.getsockname()[1]
    >>> sock.listen()
    >>> claim_port("127.0.0.1", taken)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    deepframes.serve.server.ListenError: port ... on 127.0.0.1 is already in use by another program: stop it, or pick another port with --port.
    >>> sock.close()
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise ListenError(f"cannot listen on {host!r}: no such host name ({error.strerror}); give an address of "
                          "this machine with --host, such as 127.0.0.1 or 0.0.0.0.") from None
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say
    # they are TCP, and with it on every answer waited 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ListenError(f"port {port} on {host} is already in use by another program: stop it, or pick "
                              "another port with --port.") from None
        if error.errno == errno.EACCES:
            raise ListenError(f"port {port} on {host} needs administrator rights: pick a port above 1023 with "
                              "--port (and a reverse proxy for 80 or 443).") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise ListenError(f"{host} is not an address of this machine: pick one of its addresses with --host "
                              "(0.0.0.0 for all).") from None
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror}.") from None
    return sock


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` with uvicorn on the claimed socket until Ctrl-C or SIGTERM."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])

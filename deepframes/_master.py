"""Whether a Spark master URL answers, checked in seconds before Spark's own minute of retries."""

from __future__ import annotations

import socket
import struct


_REACHABLE_TIMEOUT_S = 5.0


class MasterUnreachableError(ValueError):
    """Raised when the Spark master (or Connect endpoint) named does not answer."""

_PROBE_REQUEST_ID = 0x0DF


def _answers_spark_rpc(host: str, port: int, timeout: float) -> None:
    """Raise OSError unless a Spark RPC server listens at ``host:port``.

    An open port is not enough (a proxy or another service may accept anything): this sends a
    one-byte RPC request, which a Spark endpoint answers with an RPC failure naming the same id.
    """
    body = b"\x00"
    # Spark's frame: length (long), type (byte; 3 = RpcRequest), request id (long), body size (int).
    request = struct.pack(">qbqi", 21 + len(body), 3, _PROBE_REQUEST_ID, len(body)) + body
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.settimeout(timeout)
        connection.sendall(request)
        answer = b""
        while len(answer) < 17:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    if len(answer) < 17 or answer[8] not in (4, 5) or struct.unpack(">q", answer[9:17])[0] != _PROBE_REQUEST_ID:
        raise OSError(f"something listens there, but it does not speak Spark's RPC (it answered {answer[:24]!r})")


def check_master_reachable(master: str, timeout: float = _REACHABLE_TIMEOUT_S) -> None:
    """Raise ValueError when a ``spark://`` master does not answer as a Spark master, or an
    ``sc://`` endpoint does not accept a connection.

    Spark's own client retries an absent standalone master for over a minute before giving up;
    this answers within ``timeout`` seconds per address. Other masters (``local``, ``yarn``,
    ``k8s://``) are not checked.

    >>> check_master_reachable("local[2]")
    """
    scheme, _, rest = master.partition("://")
    if scheme not in ("spark", "sc") or not rest:
        return
    # spark://h1:7077,h2:7077 lists standby masters; sc://host:port/;token=... carries options.
    addresses = rest.split("/", 1)[0].split(";", 1)[0].split(",")
    default_port = 7077 if scheme == "spark" else 15002
    errors = []
    for address in addresses:
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        try:
            if scheme == "spark":
                _answers_spark_rpc(host, int(port or default_port), timeout)
            else:
                socket.create_connection((host, int(port or default_port)), timeout=timeout).close()
            return
        except (OSError, ValueError) as error:
            errors.append(f"{address}: {error}")
    raise MasterUnreachableError(
        f"The Spark master {master} does not answer ({'; '.join(errors)}). Expected a running "
        f"{'standalone master' if scheme == 'spark' else 'Spark Connect server'} at that address. "
        "Check the URL (deepframes cluster status prints the local one), start the cluster "
        "(deepframes cluster start), or leave --master out to run on local[*]."
    )

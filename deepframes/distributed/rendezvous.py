"""Rendezvous: the hosts and ports the ranks agree on before ``fn`` starts.

Every rank reserves its ports by binding them and keeps the sockets until its process has started
(the hand-off), so no other program takes a port between the choice and its use.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .context import RankContext


@dataclass(frozen=True)
class Endpoint:
    """What one rank publishes: its host, its TensorFlow worker port, and (rank 0) the
    torch.distributed and JAX coordinator ports."""

    host: str
    tf_port: int
    torch_port: int = 0
    jax_port: int = 0

    def to_wire(self) -> str:
        return f"{self.host}|{self.tf_port}|{self.torch_port}|{self.jax_port}"

    @classmethod
    def from_wire(cls, text: str) -> Endpoint:
        host, tf_port, torch_port, jax_port = text.rsplit("|", 3)
        return cls(host, int(tf_port), int(torch_port), int(jax_port))


def reserve_port(host: str) -> socket.socket:
    """A socket bound to a free port on ``host``; close it to hand the port over."""
    reserved = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
    )
    reserved.bind((host, 0))
    return reserved


def reserve_endpoint(host: str, rank: int) -> tuple[Endpoint, list[socket.socket]]:
    """Reserve this rank's ports; returns its endpoint and the sockets holding them.

    Examples
    --------
    >>> endpoint, held = reserve_endpoint("127.0.0.1", rank=0)
    >>> endpoint.tf_port > 0 and endpoint.torch_port > 0 and len(held)
    3
    >>> for sock in held:
    ...     sock.close()
    """
    count = 3 if rank == 0 else 1
    held = [reserve_port(host) for _ in range(count)]
    ports = [sock.getsockname()[1] for sock in held] + [0, 0]
    return Endpoint(host, ports[0], ports[1], ports[2]), held


def rank_context(
    rank: int,
    endpoints: list[Endpoint],
    *,
    attempt: int,
    run_id: str,
    checkpoint_dir: str,
    gpus: tuple[str, ...],
) -> RankContext:
    """The context of ``rank`` given every rank's endpoint (in rank order).

    Examples
    --------
    >>> endpoints = [Endpoint("h1", 10, 11, 12), Endpoint("h2", 20), Endpoint("h1", 30)]
    >>> ctx = rank_context(2, endpoints, attempt=0, run_id="r", checkpoint_dir="/c", gpus=())
    >>> ctx.local_rank, ctx.master_addr, ctx.master_port, ctx.tf_config["cluster"]["worker"][1]
    (1, 'h1', 11, 'h2:20')
    """
    chief = endpoints[0]
    host = endpoints[rank].host
    return RankContext(
        rank=rank,
        world_size=len(endpoints),
        local_rank=sum(1 for endpoint in endpoints[:rank] if endpoint.host == host),
        attempt=attempt,
        run_id=run_id,
        checkpoint_dir=checkpoint_dir,
        master_addr=chief.host,
        master_port=chief.torch_port,
        tf_config={
            "cluster": {
                "worker": [
                    _join(endpoint.host, endpoint.tf_port) for endpoint in endpoints
                ]
            },
            "task": {"type": "worker", "index": rank},
        },
        jax_coordinator_address=_join(chief.host, chief.jax_port),
        gpus=gpus,
    )


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

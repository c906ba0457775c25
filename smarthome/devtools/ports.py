"""Free TCP ports on 127.0.0.1 for the daemons and servers that tests and demos start."""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

from smarthome.errors import UserError

#: where the kernel picks the local ports of outgoing connections (Linux's default range)
EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: the lowest port of a node run picked below the ephemeral range
LOWEST_BASE_PORT = 20000


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def free_base_port(nodes: int) -> int:
    """A port p with p .. p+2*nodes-1 all free on 127.0.0.1 (node i uses p+2i and p+2i+1).

    Picked below the kernel's ephemeral range where it can: a run next to a port from that
    range (``free_port``) can collide with the local port of some client's outgoing
    connection, which a connect test does not see and a broker's bind fails on ("Address
    already in use"). Every port of the run is checked by binding it.
    """
    first_ephemeral = _first_ephemeral_port()
    for _ in range(200):
        if first_ephemeral - 2 * nodes > LOWEST_BASE_PORT:
            base = random.randrange(LOWEST_BASE_PORT, first_ephemeral - 2 * nodes)
        else:
            base = free_port()
        if base + 2 * nodes < 65535 and all(_bindable(base + i) for i in range(2 * nodes)):
            return base
    raise UserError("found no run of free ports on 127.0.0.1 for the Kafka nodes")


def _first_ephemeral_port() -> int:
    try:
        return int(EPHEMERAL_PORTS_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0  # unknown (not Linux): ports from free_port, checked by binding


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

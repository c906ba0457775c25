"""Hosts of our own for network-partition tests: Linux network namespaces on a private bridge.

A ``Network`` is one "switch" namespace holding a bridge, and one namespace per host joined to
it by a veth pair (``eth0`` in the host, ``h<i>`` on the switch). Addresses come from
``10.77.0.0/24`` and exist only inside these namespaces: nothing is added to the root
namespace. Processes run in a host through ``ip netns exec`` (``Host.run``).

Faults use iproute2 only (no iptables). A fault routes a peer's address into a "sink" in the
sending namespace: one end of a veth pair whose other end is down, with ARP off, so what is
sent there is dropped without a word to the sender, as on a real partition (a ``blackhole``
route would fail the sender's connect or send at once with EINVAL instead):

- ``isolate(host, from_hosts)``: routes in ``host`` to each peer and in each peer to
  ``host``: neither side's packets reach the other.
- ``one_way(host, from_hosts)``: routes in ``host`` only: it still receives from them but
  nothing it sends reaches them (so TCP to and from them stalls; UDP to it still arrives).
- ``heal(host)``: removes the routes the faults of ``host`` added.
- ``slow(host, delay_ms, loss_pct, seed)`` / ``unslow(host)``: every packet in and out of the
  host's ``eth0`` delayed ``delay_ms`` and ``loss_pct`` % of them dropped (a round trip takes
  about twice ``delay_ms`` more), by a ``slow_link`` process in the host that reads them from
  an NFQUEUE: what ``tc netem`` does, for kernels built without netem.

Every name starts with ``smh-part-<run id>-``; the owner's pid and start time are kept in
``/run/smarthome-partitions/<run id>.json`` (written before any namespace is made). ``close``
(also at exit, and on SIGTERM when nothing else handles it) kills what runs in the
namespaces and deletes them. ``cleanup_stale()`` (``python -m smarthome.devtools.netns
cleanup``) removes the namespaces of runs whose owner is dead, e.g. one killed with SIGKILL.
Needs root and ``ip``; ``iptables`` for ``slow``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from smarthome.devtools import slow_link
from smarthome.devtools.processes import parent_death_signal

PREFIX = "smh-part-"
STATE_DIR = Path("/run/smarthome-partitions")
SUBNET = "10.77.0"  # host i gets 10.77.0.<i+1>/24
MAX_HOSTS = 250
#: seconds the processes in a namespace get after SIGTERM before SIGKILL
STOP_GRACE_SECONDS = 5.0


class NetnsError(RuntimeError):
    """An ``ip`` or ``iptables`` command failed (the message has its stderr)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _cmd(["ip", *args], check=check)


def _cmd(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result


def namespaces() -> list[str]:
    """Every network namespace name `ip netns list` shows."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def kill_namespace(ns: str, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process in ``ns``, SIGKILL those left after ``grace``, delete ``ns``.

    (A namespace lives on while a process is in it, so the processes go first.)
    """
    pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    _ip("netns", "delete", ns, check=False)


def _owner_alive(state: dict[str, Any]) -> bool:
    try:
        proc = psutil.Process(int(state["pid"]))
        return abs(proc.create_time() - float(state["create_time"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False


def _run_id(ns: str) -> str:
    return ns[len(PREFIX) :].split("-", 1)[0]


def cleanup_stale(state_dir: Path = STATE_DIR) -> list[str]:
    """Remove the namespaces (and state files) of runs whose owner process is gone.

    A namespace with our prefix but no state file is stale too: the state file is written
    before the first namespace and removed after the last. Returns the namespaces removed.
    """
    removed = []
    alive: dict[str, bool] = {}
    for ns in namespaces():
        if not ns.startswith(PREFIX):
            continue
        run_id = _run_id(ns)
        if run_id not in alive:
            alive[run_id] = _owner_alive(_read_state(state_dir / f"{run_id}.json"))
        if not alive[run_id]:
            kill_namespace(ns)
            removed.append(ns)
    if state_dir.is_dir():
        for state_file in state_dir.glob("*.json"):
            if not alive.get(state_file.stem, _owner_alive(_read_state(state_file))):
                state_file.unlink(missing_ok=True)
    return removed


def _read_state(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(path.read_text())
        return state if isinstance(state, dict) else {}
    return {}


@dataclass
class Host:
    """One host: its own network namespace with ``eth0`` at ``address`` on the bridge."""

    name: str
    index: int
    netns: str
    address: str
    switch_port: str  # the veth end on the switch side, "h<i>"
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a program in this host's namespace."""
        return ["ip", "netns", "exec", self.netns]

    def run(self, argv: list[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in this host (``ip netns exec`` execs it: the pid is the program's).

        It gets SIGTERM when its parent dies (override with ``preexec_fn``), and ``close``
        stops whatever still runs in the namespace.
        """
        popen_kwargs.setdefault("preexec_fn", parent_death_signal())
        proc = subprocess.Popen([*self.prefix, *argv], **popen_kwargs)
        self.processes.append(proc)
        return proc


class Network:
    """A bridge in a switch namespace and hosts in namespaces of their own (a context manager)."""

    def __init__(self, state_dir: Path = STATE_DIR, handle_sigterm: bool = True) -> None:
        self.run_id = secrets.token_hex(3)
        self.state_dir = state_dir
        self.state_file = state_dir / f"{self.run_id}.json"
        self.switch = f"{PREFIX}{self.run_id}-switch"
        self.hosts: dict[str, Host] = {}
        # (namespace, destination) -> the hosts whose faults want that blackhole route
        self._routes: dict[tuple[str, str], set[str]] = {}
        #: host name -> its slow link process and delay
        self._slowed: dict[str, tuple[subprocess.Popen[str], float]] = {}
        self._sinks: set[str] = set()  # the namespaces that have their sink
        self._lock = threading.RLock()  # a SIGTERM's close may run inside a fault's change
        self._closed = False
        self._owner = True  # made the namespaces (``attach``: another process did)
        self._write_state()
        atexit.register(self.close)
        _OPEN.add(self)
        if handle_sigterm:
            _close_on_sigterm()
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _write_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        me = psutil.Process()
        state = {"pid": me.pid, "create_time": me.create_time(), "run_id": self.run_id}
        self.state_file.write_text(json.dumps(state) + "\n")

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- hosts ---------------------------------------------------------------------------
    def add_host(self, name: str) -> Host:
        """A new host ``name`` (letters, digits, dashes) on the bridge, lo and eth0 up."""
        if self._closed:
            raise NetnsError("the network is closed")
        if name in self.hosts or name == "switch" or not name.replace("-", "").isalnum():
            raise ValueError(f"host name {name!r} is taken or not letters, digits and dashes")
        index = len(self.hosts)
        if index >= MAX_HOSTS:
            raise ValueError(f"at most {MAX_HOSTS} hosts")
        host = Host(
            name=name,
            index=index,
            netns=f"{PREFIX}{self.run_id}-{name}",
            address=f"{SUBNET}.{index + 1}",
            switch_port=f"h{index}",
        )
        self.hosts[name] = host
        ns = host.netns
        _ip("netns", "add", ns)
        # both ends are made directly in their namespaces: nothing appears in the root one
        _ip(
            "link", "add", "eth0", "netns", ns, "type", "veth",
            "peer", "name", host.switch_port, "netns", self.switch,
        )  # fmt: skip
        _ip("-n", self.switch, "link", "set", host.switch_port, "master", "br0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        return host

    def _host(self, host: Host | str) -> Host:
        return self.hosts[host if isinstance(host, str) else host.name]

    # -- faults --------------------------------------------------------------------------
    def _block(self, owner: Host, ns: str, destination: str) -> None:
        """Route ``destination`` into the sink of ``ns`` (for the faults of ``owner``)."""
        key = (ns, destination)
        with self._lock:
            if ns not in self._sinks:
                _ip("-n", ns, "link", "add", "sink0", "type", "veth", "peer", "name", "sink1")
                _ip("-n", ns, "link", "set", "sink0", "arp", "off", "up")  # sink1 stays down
                self._sinks.add(ns)
            if key not in self._routes:
                _ip("-n", ns, "route", "replace", f"{destination}/32", "dev", "sink0")
                self._routes[key] = set()
            self._routes[key].add(owner.name)

    def isolate(self, host: Host | str, from_hosts: list[Host | str]) -> None:
        """No packet between ``host`` and any of ``from_hosts``, in either direction."""
        host = self._host(host)
        for peer in map(self._host, from_hosts):
            self._block(host, host.netns, peer.address)
            self._block(host, peer.netns, host.address)

    def one_way(self, host: Host | str, from_hosts: list[Host | str]) -> None:
        """``host`` still receives from ``from_hosts`` but nothing it sends reaches them."""
        host = self._host(host)
        for peer in map(self._host, from_hosts):
            self._block(host, host.netns, peer.address)

    def heal(self, host: Host | str) -> None:
        """Remove the routes that the faults of ``host`` added (others' faults stay)."""
        host = self._host(host)
        with self._lock:
            for key, owners in list(self._routes.items()):
                owners.discard(host.name)
                if not owners:
                    ns, destination = key
                    _ip("-n", ns, "route", "del", f"{destination}/32", "dev", "sink0", check=False)
                    del self._routes[key]

    def slow(self, host: Host | str, delay_ms: float, loss_pct: float = 0.0, seed: int = 0) -> None:
        """Delay every packet in and out of ``host``'s link ``delay_ms`` and drop ``loss_pct``
        % of them (a seeded choice), as ``tc netem delay D loss L%`` on both ends would: a
        ``slow_link`` process in ``host`` reads them from an NFQUEUE that iptables rules
        fill. (Done in user space because kernels built without netem cannot load it.)"""
        host = self._host(host)
        if shutil.which("iptables") is None:
            raise NetnsError("iptables is not installed: apt-get install iptables")
        with self._lock:
            if host.name in self._slowed:
                raise NetnsError(f"host {host.name} is slowed already")
            link = host.run(
                [sys.executable, "-m", "smarthome.devtools.slow_link",
                 "--delay-ms", f"{delay_ms:g}", "--loss-pct", f"{loss_pct:g}", "--seed", str(seed)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert link.stdout is not None
            if link.stdout.readline().strip() != "ready":
                link.wait(10)
                raise NetnsError(f"the slow link of {host.name} did not start ({link.returncode})")
            self._slowed[host.name] = (link, delay_ms)
            for rule in slow_link.iptables_rules():
                _ip("netns", "exec", host.netns, "iptables", "-w", "-A", *rule)

    def unslow(self, host: Host | str) -> str:
        """Take ``slow``'s rules out, let what it holds go, stop it; its counts line."""
        host = self._host(host)
        with self._lock:
            link, delay_ms = self._slowed.pop(host.name, (None, 0.0))
            if link is None:
                return ""
            for rule in slow_link.iptables_rules():
                _ip("netns", "exec", host.netns, "iptables", "-w", "-D", *rule, check=False)
        time.sleep(delay_ms / 1000 + 0.2)  # what it still holds is due by then
        link.terminate()
        out, _ = link.communicate(timeout=10)
        return out.strip()

    # -- a network made by another process ----------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What ``attach`` needs to apply faults from another process (e.g. one run inside
        a host: only there are the hosts' addresses reachable)."""
        return {
            "run_id": self.run_id,
            "hosts": [
                {"name": h.name, "index": h.index, "netns": h.netns, "address": h.address,
                 "switch_port": h.switch_port}
                for h in self.hosts.values()
            ],
        }  # fmt: skip

    @classmethod
    def attach(cls, description: dict[str, Any]) -> Network:
        """The network ``description`` describes, for its faults: closing it heals what it
        broke and leaves the namespaces to the process that made them."""
        self = cls.__new__(cls)
        self.run_id = description["run_id"]
        self.switch = f"{PREFIX}{self.run_id}-switch"
        self.hosts = {h["name"]: Host(**h) for h in description["hosts"]}
        self._routes, self._slowed, self._sinks = {}, {}, set()
        self._lock = threading.RLock()
        self._closed = False
        self._owner = False
        return self

    # -- teardown ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every process in the hosts, delete every namespace (links, routes and qdiscs
        go with them) and the state file. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._owner:
            for name in list(self._slowed):
                self.unslow(name)
            for name in list(self.hosts):
                self.heal(name)
            return
        for host in self.hosts.values():
            kill_namespace(host.netns)
            for proc in host.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        kill_namespace(self.switch)
        self.state_file.unlink(missing_ok=True)
        _OPEN.discard(self)
        atexit.unregister(self.close)


#: the networks not closed yet, for the SIGTERM handler
_OPEN: weakref.WeakSet[Network] = weakref.WeakSet()


def _close_on_sigterm() -> None:
    """On SIGTERM, close every open network, then die of SIGTERM as before. Only if this
    program has no SIGTERM handler of its own and this is the main thread (Ctrl-C already
    raises KeyboardInterrupt, so ``with`` blocks and ``atexit`` clean up)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, _frame: object) -> None:
        for network in list(_OPEN):
            network.close()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smarthome.devtools.netns",
        description="Network namespaces of the partition tests (needs root).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("cleanup", help="remove the namespaces left by runs whose owner is dead")
    sub.add_parser("list", help="list this harness's namespaces")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.command == "list":
        for ns in namespaces():
            if ns.startswith(PREFIX):
                print(ns)
        return 0
    started = time.monotonic()
    removed = cleanup_stale()
    for ns in removed:
        print(f"removed {ns}")
    print(f"{len(removed)} stale namespace(s) removed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

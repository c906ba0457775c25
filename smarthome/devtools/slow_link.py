"""A slow, lossy link in user space: what ``tc qdisc ... netem delay D loss L%`` does.

Some kernels are built without netem (``CONFIG_NET_SCH_NETEM``) and cannot load it. This
program does the same from user space: iptables rules in a host's network namespace send
every packet that enters or leaves its ``eth0`` to an NFQUEUE (``CONFIG_NETFILTER_NETLINK_QUEUE``,
``xt_NFQUEUE``), and this process, running in that namespace, drops ``--loss-pct`` % of them
(chosen by a seeded random generator, so a run can be repeated) and gives the others back to
the kernel ``--delay-ms`` after they arrived, in order. Only metadata is copied to user space.

    ip netns exec NS python -m smarthome.devtools.slow_link --delay-ms 200 --loss-pct 20

It prints ``ready`` once bound to its queue (the rules must be added after that: with no
reader a queued packet is dropped), counts on SIGTERM, and exits. ``netns.Network.slow``
starts it and adds the rules; ``unslow`` removes the rules, then stops it.
"""

from __future__ import annotations

import argparse
import heapq
import random
import signal
import sys
import threading
import time
from typing import Any

QUEUE = 7
#: packets held at once (the kernel queue's bound): a 200 ms delay at this many packets is
#: far more than a link with 20 % loss carries
MAX_HELD = 16384


def iptables_rules(queue: int = QUEUE) -> list[list[str]]:
    """The rule arguments (after ``-A``/``-D``) that queue what crosses ``eth0``."""
    return [
        ["INPUT", "-i", "eth0", "-j", "NFQUEUE", "--queue-num", str(queue)],
        ["OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", str(queue)],
    ]


class Link:
    """Holds each queued packet ``delay`` seconds, or drops it with probability ``loss``."""

    def __init__(self, delay: float, loss: float, seed: int) -> None:
        self.delay, self.loss = delay, loss
        self.rng = random.Random(seed)
        self.held: list[tuple[float, int, Any]] = []  # (due, arrival number, packet)
        self.cond = threading.Condition()
        self.passed = self.dropped = 0
        self.closed = False

    def take(self, packet: Any) -> None:
        if self.rng.random() < self.loss:
            packet.drop()
            self.dropped += 1
            return
        with self.cond:
            heapq.heappush(self.held, (time.monotonic() + self.delay, self.passed, packet))
            self.passed += 1
            self.cond.notify()

    def release(self) -> None:
        """Give each held packet back when it is due (a thread of its own)."""
        while True:
            with self.cond:
                while not self.closed and (not self.held or self.held[0][0] > time.monotonic()):
                    self.cond.wait(self.held[0][0] - time.monotonic() if self.held else None)
                if self.closed:
                    return
                _, _, packet = heapq.heappop(self.held)
            packet.accept()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smarthome.devtools.slow_link", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--delay-ms", type=float, required=True, help="each packet's delay")
    parser.add_argument("--loss-pct", type=float, default=0.0, help="packets dropped, in %%")
    parser.add_argument("--seed", type=int, default=0, help="of the drops")
    parser.add_argument("--queue", type=int, default=QUEUE, help="the NFQUEUE number")
    args = parser.parse_args(argv)
    if not 0 <= args.loss_pct <= 100 or args.delay_ms < 0:
        parser.error("--loss-pct must be within 0..100 and --delay-ms not negative")

    import fnfqueue  # needs root: imported only when a link is made

    conn = fnfqueue.Connection(packet_size=4096)  # metadata only: small buffers
    try:
        queue = conn.bind(args.queue)
    except PermissionError:
        print("error: binding an NFQUEUE needs root (CAP_NET_ADMIN)", file=sys.stderr)
        return 2
    queue.set_mode(0, fnfqueue.COPY_META)
    queue.set_maxlen(MAX_HELD)
    link = Link(args.delay_ms / 1000, args.loss_pct / 100, args.seed)
    releaser = threading.Thread(target=link.release, name="release", daemon=True)
    releaser.start()
    signal.signal(signal.SIGTERM, lambda *_: conn.close())
    print("ready", flush=True)
    try:
        for packet in conn:
            link.take(packet)
    except KeyboardInterrupt:
        pass
    finally:
        link.close()
        conn.close()
    print(f"passed {link.passed} delayed by {args.delay_ms:g} ms, dropped {link.dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every stage script shares on the command line: one-line errors, clean Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from smarthome.config import env, help_default
from smarthome.errors import UserError


def run(main: Callable[[], int | None], prog: str) -> None:
    """Run a script's ``main()``: exit with its code, one-line errors, 130 on Ctrl-C."""
    # A process started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then never raises KeyboardInterrupt: every stage promises a clean Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def number(kind: type, flag: str, minimum: float = 0, *, exclusive: bool = False) -> Callable:
    """An argparse type: a number >= minimum (> with ``exclusive``), else an error naming flag."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number (got {text!r})") from None
        if not (value > minimum if exclusive else value >= minimum):  # also rejects NaN
            sign = ">" if exclusive else ">="
            raise argparse.ArgumentTypeError(f"{flag} must be {sign} {minimum:g} (got {text})")
        return value

    return parse


def add_kafka_flags(parser: argparse.ArgumentParser) -> None:
    """--bootstrap-servers and --topic, defaulting to the environment (DESIGN §2)."""
    parser.add_argument(
        "--bootstrap-servers",
        default=env("KAFKA_BOOTSTRAP_SERVERS"),
        help=f"Kafka brokers, host:port[,...] {help_default('KAFKA_BOOTSTRAP_SERVERS')}",
    )
    parser.add_argument(
        "--topic", default=env("KAFKA_TOPIC"), help=f"topic {help_default('KAFKA_TOPIC')}"
    )


def add_metrics_flag(parser: argparse.ArgumentParser) -> None:
    """--metrics-port: Prometheus metrics on 127.0.0.1 (off unless given)."""
    parser.add_argument(
        "--metrics-port",
        type=number(int, "--metrics-port", 1),
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (default: off)",
    )

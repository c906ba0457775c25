"""What every stage script shares on the command line: one-line errors, clean Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from smarthome.config import DEFAULTS, env, help_default
from smarthome.errors import UserError
from smarthome.kafka_settings import bootstrap_servers, use_kafka_config

#: how long a consumer waits for a broker at start unless --broker-wait or --follow says otherwise
DEFAULT_BROKER_WAIT = 60.0
IDLE_HELP = "stop after this many seconds without a new record (default: 30)"


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
    """--bootstrap-servers, --topic and --kafka-config, defaulting to the environment
    (DESIGN §2); ``apply_kafka_flags`` resolves them once parsed."""
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        help="Kafka brokers, host:port[,...] (env KAFKA_BOOTSTRAP_SERVERS, else the"
        f" --kafka-config file's bootstrap.servers, else {DEFAULTS['KAFKA_BOOTSTRAP_SERVERS']})",
    )
    parser.add_argument(
        "--topic", default=env("KAFKA_TOPIC"), help=f"topic {help_default('KAFKA_TOPIC')}"
    )
    add_kafka_config_flag(
        parser,
        "(security.protocol, sasl.*, ssl.*: the format of Kafka's own --command-config) for a"
        " secured cluster",
    )


def add_kafka_config_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--kafka-config FILE (env KAFKA_CONFIG): ``what`` says who connects with the file."""
    parser.add_argument(
        "--kafka-config",
        metavar="FILE",
        default=None,
        help=f"Kafka client properties {what} (env KAFKA_CONFIG; default: plaintext)",
    )


def apply_kafka_flags(args: argparse.Namespace) -> argparse.Namespace:
    """Read --kafka-config (a bad file stops here, in one line) and settle the brokers."""
    use_kafka_config(args.kafka_config)
    args.bootstrap_servers = bootstrap_servers(
        args.bootstrap_servers, DEFAULTS["KAFKA_BOOTSTRAP_SERVERS"]
    )
    return args


def add_metrics_flag(parser: argparse.ArgumentParser) -> None:
    """--metrics-port: Prometheus metrics on 127.0.0.1 (off unless given)."""
    parser.add_argument(
        "--metrics-port",
        type=number(int, "--metrics-port", 1),
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (default: off)",
    )


def add_group_member_flags(parser: argparse.ArgumentParser, idle_help: str = IDLE_HELP) -> None:
    """--idle-timeout, --follow, --broker-wait, --session-timeout: a consumer group member's run."""
    parser.add_argument(
        "--idle-timeout",
        type=number(float, "--idle-timeout", exclusive=True),
        default=30.0,
        help=idle_help,
    )
    parser.add_argument(
        "--follow", action="store_true", help="never stop on idle; run until Ctrl-C"
    )
    parser.add_argument(
        "--broker-wait",
        type=number(float, "--broker-wait"),
        default=None,
        metavar="SECONDS",
        help="wait this long for a broker at start (default: 60; with --follow: forever;"
        " 0: fail at once)",
    )
    parser.add_argument(
        "--session-timeout",
        type=number(float, "--session-timeout", 6),
        default=10.0,
        metavar="SECONDS",
        help="the group moves a silent member's partitions after this long (default: 10;"
        " the broker allows 6 to 1800)",
    )


def group_member_options(args: argparse.Namespace) -> dict[str, Any]:
    """What add_group_member_flags' flags set, as the options' keyword arguments."""
    if args.broker_wait is not None:
        wait = args.broker_wait
    else:  # 60 s, forever with --follow
        wait = None if args.follow else DEFAULT_BROKER_WAIT
    return {
        "idle_timeout": args.idle_timeout,
        "follow": args.follow,
        "session_timeout_ms": int(args.session_timeout * 1000),
        "broker_wait": wait,
    }


def folder(path: str, flag: str) -> Path:
    """``path`` as a folder to use or create; a file there is a one-line error naming flag."""
    found = Path(path)
    if found.exists() and not found.is_dir():
        raise UserError(f"{flag} {found} is a file, not a folder; pick another path")
    return found


class Stoppable(Protocol):
    """A long-running loop that finishes cleanly when asked (the consumer, the stream scorer)."""

    stop_reason: str

    def request_stop(self, reason: str) -> None: ...


def install_stop_handlers(runner: Stoppable) -> None:
    """First Ctrl-C/SIGTERM: ask ``runner`` to finish cleanly and stop. Second Ctrl-C: abort."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: Any) -> None:
        if runner.stop_reason and signum == signal.SIGINT:
            raise KeyboardInterrupt
        runner.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

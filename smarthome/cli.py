"""What every stage script shares on the command line: one-line errors, clean Ctrl-C."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """An expected failure (missing broker, dataset, folder, model set, bad flag value).

    The message is shown as one line, without a traceback, and should say what to do.
    """


def run(main: Callable[[], int | None], prog: str) -> None:
    """Run a script's ``main()``: exit with its code, one-line errors, 130 on Ctrl-C."""
    try:
        code = main()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

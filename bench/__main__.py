"""``make bench``: run every ``bench/bench_*.py`` in turn; each prints its own table.

``python -m bench NAME...`` runs only those. ``bench_scale`` (a million records, several
minutes) runs only when named: ``make bench-scale``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from smarthome.devtools.processes import stop_children_at_exit

HERE = Path(__file__).resolve().parent
ASKED_FOR_BY_NAME = {"bench_scale"}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmarks in bench/ in turn; each prints its own table.",
        epilog="bench_scale (about 10 minutes) runs only when named: python -m bench bench_scale",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="run only the benchmarks whose name contains NAME (e.g. api, bench_scale)",
    )
    only = parser.parse_args().names
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if only and not any(name in script.stem for name in only):
            continue
        if not only and script.stem in ASKED_FOR_BY_NAME:
            continue
        print(f"\n## {script.stem}\n", flush=True)
        result = subprocess.run([sys.executable, "-m", f"bench.{script.stem}"], cwd=HERE.parent)
        if result.returncode:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())

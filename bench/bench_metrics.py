"""What the API's Prometheus metrics cost: requests/s with ``/metrics`` on and off, one run.

The same ``python app_api.py`` (default server and workers) with and without
``--no-metrics``, each measured ``--rounds`` times, interleaved (on, off, on, off, ...), so
a change in the machine's load hits both alike; POST /predict_efficiency with the README's body.
``python -m bench.bench_metrics [--seconds S] [--clients N]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_api import dataset_rows, load, model_dir_with_a_set, wrk_load
from smarthome.config import env
from smarthome.contracts.records import DEVICE_FEATURES
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.devtools.servers import running_api


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_metrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=env("MODEL_DIR"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="on/off pairs, interleaved")
    args = parser.parse_args()
    body = json.dumps({k: dataset_rows(1)[0][k] for k in DEVICE_FEATURES}).encode()
    figures: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        work = Path(tmp)
        model_dir = model_dir_with_a_set(Path(args.model_dir), work)
        for i, mode in enumerate(["on", "off"] * args.rounds):
            flags = ["--reload-seconds", "0"] + (["--no-metrics"] if mode == "off" else [])
            with running_api(model_dir, work / f"api{i}.log", *flags) as url:
                port = int(url.rsplit(":", 1)[1])
                load(port, "POST", "/predict_efficiency", body, args.clients, 1.0)  # warm-up
                if shutil.which("wrk"):
                    rps = wrk_load(
                        url, "POST", "/predict_efficiency", body, args.clients, args.seconds, work
                    )[0]
                else:
                    rps = load(port, "POST", "/predict_efficiency", body, args.clients,
                               args.seconds)[0]  # fmt: skip
                figures[mode].append(rps)
    on, off = statistics.mean(figures["on"]), statistics.mean(figures["off"])
    tool = "wrk -t2" if shutil.which("wrk") else "Python clients"
    print(
        f"POST /predict_efficiency, {args.clients} connections, {args.seconds:g} s x"
        f" {args.rounds} each"
        f" ({tool}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| API | requests/s (each run) | mean |\n|---|---|---:|")
    for mode, label in (("off", "--no-metrics"), ("on", "metrics on (default)")):
        runs = ", ".join(f"{v:,.0f}" for v in figures[mode])
        print(f"| {label} | {runs} | {statistics.mean(figures[mode]):,.0f} |")
    print(f"\nmetrics cost: {1 - on / off:+.1%} of requests/s (aim: at most 5%)")
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())

"""API benchmark (DESIGN §11): in-process latency, HTTP throughput, Spark-per-request baseline.

    python -m bench.bench_api [--model-dir DIR] [--seconds 5] [--clients 8]

Uses the newest set in --model-dir (env MODEL_DIR); if there is none, trains one on the whole
dataset into a temporary folder with ``spark_training.py --latest-only``.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import multiprocessing as mp
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smarthome.config import env
from smarthome.contracts import model_sets as registry
from smarthome.contracts.batch_files import batch_file_name
from smarthome.contracts.records import DEVICE_FEATURES
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.devtools.servers import running_api

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "dataset" / "smart_home_device_usage_data.csv"


def dataset_rows(limit: int | None = None) -> list[dict[str, Any]]:
    with open(DATASET, newline="") as fh:
        rows = list(csv.DictReader(fh))[:limit]
    typed = []
    for r in rows:
        typed.append(
            {
                "UserID": int(r["UserID"]),
                "DeviceType": r["DeviceType"],
                "UsageHoursPerDay": float(r["UsageHoursPerDay"]),
                "EnergyConsumption": float(r["EnergyConsumption"]),
                "UserPreferences": int(r["UserPreferences"]),
                "MalfunctionIncidents": int(r["MalfunctionIncidents"]),
                "DeviceAgeMonths": int(r["DeviceAgeMonths"]),
                "SmartHomeEfficiency": int(r["SmartHomeEfficiency"]),
            }
        )
    return typed


def model_dir_with_a_set(model_dir: Path, work: Path) -> Path:
    """``model_dir`` if it holds a set, else a fresh one trained on the whole dataset."""
    if registry.newest_set(model_dir):
        return model_dir
    batches, models = work / "batches", work / "models"
    batches.mkdir()
    shutil.copy(DATASET, batches / batch_file_name("smart_home_stream", 0, 0, 5402))
    print(f"no model set in {model_dir}; training one in {models} ...", file=sys.stderr)
    subprocess.run(
        [sys.executable, "spark_training.py", "--batch-dir", str(batches)]
        + ["--model-dir", str(models), "--latest-only"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return models


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(model_dir: Path, n: int) -> list[tuple[str, float, float]]:
    """p50/p99 in ms of one request through Flask's test client (no network)."""
    from smarthome.api import create_app

    client = create_app(model_dir, reload_seconds=0).test_client()
    row = {k: dataset_rows(1)[0][k] for k in DEVICE_FEATURES}
    body = json.dumps(row)
    out = []
    for path in ("/predict_efficiency", "/predict_malfunction", "/get_device_segment"):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            answer = client.post(path, data=body, content_type="application/json")
            times.append((time.perf_counter() - t) * 1000)
            assert answer.status_code == 200, answer.get_json()
        out.append((f"in-process POST {path}", pct(times, 0.5), pct(times, 0.99)))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.get("/healthz")
        times.append((time.perf_counter() - t) * 1000)
    out.append(("in-process GET /healthz (no-op)", pct(times, 0.5), pct(times, 0.99)))
    return out


def _client(port: int, method: str, path: str, body: bytes, seconds: float, q: Any) -> None:
    """One keep-alive connection sending requests back to back for ``seconds``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"} if body else {}
    latencies, errors = [], 0
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        answer.read()
        latencies.append((time.perf_counter() - start) * 1000)
        errors += answer.status != 200
    conn.close()
    q.put((latencies, errors))


def load(port: int, method: str, path: str, body: bytes, clients: int, seconds: float):
    """Requests/s, p50, p99 (ms) and errors with ``clients`` client processes."""
    q: Any = mp.Queue()
    procs = [
        mp.Process(target=_client, args=(port, method, path, body, seconds, q))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = [x for lat, _ in results for x in lat]
    errors = sum(e for _, e in results)
    return len(latencies) / seconds, pct(latencies, 0.5), pct(latencies, 0.99), errors


def wrk_load(
    url: str, method: str, path: str, body: bytes, clients: int, seconds: float, work: Path
):
    """The same measurement with wrk (C load generator) if installed: requests/s, p50, p99."""
    script = work / "post.lua"
    script.write_text(
        f'wrk.method = "{method}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    cmd = ["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--latency"]
    if body:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url + path], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)  # connect, read, write, timeout
    failed = sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))) if socket_errors else 0

    def latency(q: str) -> float:
        value, unit = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, latency("50"), latency("99"), (int(errors.group(1)) if errors else 0) + failed


#: rows in the list request of the bench (the bar it is held to: >= 50,000 rows/s)
LIST_ROWS = 100


def servers() -> list[tuple[str, list[str]]]:
    """(label, app_api.py flags): the old configuration first, then today's default."""
    from smarthome.api.serve import default_server, default_workers

    new = default_server()
    how = f"{default_workers()} workers" if new == "granian" else "4 threads"
    return [
        ("waitress, 4 threads (before)", ["--server", "waitress", "--threads", "4"]),
        (f"`python app_api.py` ({new}, {how})", []),
    ]


def http_table(model_dir: Path, work: Path, clients: int, seconds: float) -> list[tuple]:
    """(server, request, rows per request, requests/s, p50, p99, errors) for each server."""
    rows = dataset_rows(LIST_ROWS)
    one = json.dumps({k: rows[0][k] for k in DEVICE_FEATURES}).encode()
    many = json.dumps([{k: r[k] for k in DEVICE_FEATURES} for r in rows]).encode()
    targets = (
        ("POST /healthz (no-op)", "/healthz", one, 1),
        ("POST /predict_efficiency", "/predict_efficiency", one, 1),
        (f"POST /predict_efficiency, {LIST_ROWS} rows", "/predict_efficiency", many, LIST_ROWS),
    )
    out = []
    for server, flags in servers():
        log = work / f"api-{len(out)}.log"
        with running_api(model_dir, log, "--bench-noop", "--reload-seconds", "0", *flags) as url:
            port = int(url.rsplit(":", 1)[1])
            for label, path, body, rows_per in targets:
                load(port, "POST", path, body, clients, 1.0)  # warm-up
                if shutil.which("wrk"):
                    figures = wrk_load(url, "POST", path, body, clients, seconds, work)
                else:
                    figures = load(port, "POST", path, body, clients, seconds)
                out.append((server, label, rows_per, *figures))
    return out


def spark_baseline(set_dir: Path, n: int) -> float:
    """The original design: createDataFrame + PipelineModel.transform per request (p50 ms)."""
    from pyspark.ml import PipelineModel

    from smarthome.training.spark import get_spark

    spark = get_spark("local[2]", "bench-api-baseline")
    model = PipelineModel.load(str(set_dir / "efficiency"))
    row = {k: dataset_rows(1)[0][k] for k in DEVICE_FEATURES}
    times = []
    for i in range(n + 3):
        t = time.perf_counter()
        df = spark.createDataFrame([row])
        model.transform(df).select("prediction", "probability").collect()
        if i >= 3:  # the first calls warm the JVM up
            times.append((time.perf_counter() - t) * 1000)
    spark.stop()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=env("MODEL_DIR"))
    parser.add_argument("--seconds", type=float, default=5.0, help="per HTTP load run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="in-process per endpoint")
    parser.add_argument("--spark-requests", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        work = Path(tmp)
        model_dir = model_dir_with_a_set(Path(args.model_dir), work)
        set_dir = registry.newest_set(model_dir)
        rows = in_process(model_dir, args.requests)
        print(f"model set: {set_dir.name}\n")
        print("| measurement | p50 ms | p99 ms |\n|---|---|---|")
        for name, p50, p99 in rows:
            print(f"| {name} | {p50:.3f} | {p99:.3f} |")

        http_rows = http_table(model_dir, work, args.clients, args.seconds)
        generator = "wrk -t2" if shutil.which("wrk") else "Python clients (wrk not installed)"
        print(
            f"\nHTTP, {args.clients} keep-alive connections, {args.seconds:g} s per row, "
            f"{generator}; both servers started by this run:\n"
        )
        print("| server | request | requests/s | rows/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        for server, label, rows_per, rps, p50, p99, errors in http_rows:
            print(
                f"| {server} | {label} | {rps:,.0f} | {rps * rows_per:,.0f} | {p50:.2f} "
                f"| {p99:.2f} | {errors} |"
            )
        by = {(server, label): rps for server, label, _, rps, *_ in http_rows}
        old, new = (label for label, _ in servers())
        for label in ("POST /predict_efficiency", f"POST /predict_efficiency, {LIST_ROWS} rows"):
            print(f"\n{label}: {by[new, label] / by[old, label]:.2f}x the requests/s of {old}")
        for server in (old, new):
            share = by[server, "POST /predict_efficiency"] / by[server, "POST /healthz (no-op)"]
            print(f"{server}: predict_efficiency at {share:.0%} of its no-op's requests/s")

        spark_p50 = spark_baseline(set_dir, args.spark_requests)
        ours = rows[0][1]
        print("\n| original design (Spark per request) | p50 ms | vs in-process |\n|---|---|---|")
        print(
            f"| createDataFrame + PipelineModel.transform + collect | {spark_p50:.1f} "
            f"| {spark_p50 / ours:.0f}x slower |"
        )
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())

"""UI benchmark: page runs, a form round trip, bulk predictions, first paint in Chromium.

    python -m bench.bench_ui [--model-dir DIR] [--runs 10]

Serves the newest set in --model-dir (env MODEL_DIR) with the real ``app_api.py``; without a
set, trains one on the whole dataset first (as bench_api does). Bulk predictions of the whole
dataset are compared with the naive way (three POSTs per row) on the same API.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from streamlit.testing.v1 import AppTest

from bench.bench_api import model_dir_with_a_set
from smarthome.config import env
from smarthome.devtools.ports import free_port
from smarthome.devtools.processes import stop_children_at_exit
from smarthome.devtools.servers import running_api
from smarthome.ui import bulk
from smarthome.ui.client import ApiClient

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "dataset" / "smart_home_device_usage_data.csv"
CHROMIUM = Path("/usr/bin/chromium")


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms (median of {len(samples)})"


def page_runs(api: str, runs: int) -> list[tuple[str, str]]:
    """AppTest: first run of the page, reruns, and one efficiency form submit."""
    at = AppTest.from_file(str(ROOT / "app_ui.py"), default_timeout=60)
    at.session_state["api_url"] = api
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    reruns, submits = [], []
    button = next(b for b in at.button if b.label == "Predict efficiency")
    for _ in range(runs):
        start = time.perf_counter()
        at.run()
        reruns.append(time.perf_counter() - start)
        start = time.perf_counter()
        button.click().run()
        submits.append(time.perf_counter() - start)
    return [
        ("page, first run (AppTest, all 6 sections)", f"{first * 1000:.0f} ms"),
        ("page, rerun", _ms(reruns)),
        ("efficiency form submit -> result drawn", _ms(submits)),
    ]


def bulk_figures(api: str, naive_rows: int) -> list[tuple[str, str]]:
    raw = DATASET.read_bytes()
    client = ApiClient(api)
    start = time.perf_counter()
    frame = bulk.read_devices(raw)
    result = bulk.predict_bulk(client, frame)
    seconds = time.perf_counter() - start
    rows = len(frame)
    rate = rows / seconds
    # the naive way: three single-record POSTs per row
    sample = frame.head(naive_rows)
    start = time.perf_counter()
    for _, row in sample.iterrows():
        record = bulk.device_record(row)
        client.predict_efficiency(record)
        client.predict_malfunction({k: v for k, v in record.items() if k != "MalfunctionIncidents"})
        client.get_device_segment(record)
    naive = naive_rows / (time.perf_counter() - start)
    return [
        (
            f"bulk CSV, whole dataset ({rows} rows, {result.predicted} predicted)",
            f"{seconds:.2f} s",
        ),
        ("bulk rows/s (lists of 200 per request)", f"{rate:,.0f}"),
        (f"naive rows/s (3 POSTs per row, {naive_rows} rows)", f"{naive:,.0f}"),
        ("bulk / naive", f"{rate / naive:.1f}x"),
    ]


def browser_figure(api: str) -> list[tuple[str, str]]:
    """``streamlit run`` + headless Chromium: page open until the form button is visible."""
    if not CHROMIUM.exists():
        return [("first paint in Chromium", "skipped: no /usr/bin/chromium (make browser)")]
    from playwright.sync_api import sync_playwright

    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app_ui.py", "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "API_URL": api},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        samples = []
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
            )
            for _ in range(3):
                page = chromium.new_page()
                start = time.perf_counter()
                page.goto(url)
                page.get_by_text("API reachable").wait_for(timeout=60_000)
                samples.append(time.perf_counter() - start)
                page.close()
            chromium.close()
        return [("open page -> status shown (headless Chromium)", _ms(samples))]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=env("MODEL_DIR"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--naive-rows", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        model_dir = model_dir_with_a_set(Path(args.model_dir), Path(work))
        with running_api(model_dir, Path(work) / "api.log") as api:
            rows = page_runs(api, args.runs) + bulk_figures(api, args.naive_rows)
            rows += browser_figure(api)
    print("| UI figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    stop_children_at_exit()  # no broker or stage left running after SIGTERM/Ctrl-C
    sys.exit(main())

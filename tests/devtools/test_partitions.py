"""Exactly once under network partitions (``make partitions``), brokers and clients on hosts
of their own: one seeded run of 30,000 records with every fault, as a user runs it.

Needs root, iproute2 and iptables (``make iptables``), Java and a trained model set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smarthome.devtools import netns
from tests.conftest import ROOT, require

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.partitions]


@pytest.mark.timeout(1500)  # about 6 minutes of faults and stream; a loaded machine needs room
def test_a_seeded_run_with_every_partition_fault_loses_and_repeats_nothing(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    require(os.geteuid() == 0, "root (network namespaces)")
    for tool in ("ip", "iptables", "java"):
        require(shutil.which(tool) is not None, f"{tool} (make iptables; Java 17)")
    before = set(netns.namespaces())
    links_before = root_links()
    work = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "smarthome.devtools.partitions", "--records", "30000",
         "--seed", "1", "--model-dir", str(trained_model_dir), "--work", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=1400,
    )  # fmt: skip
    out = done.stdout + done.stderr
    logs = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in (work / "logs").glob("*.log"))
    assert done.returncode == 0, f"{out}\n{logs}"
    assert (
        "delivered 30000 | in the topic 30000 | in the files 30000 | duplicates 0 | missing 0"
        in out
    ), out
    assert "scored: delivered 30000 | inputs 30000 | predictions " in out, out
    assert re.search(r"dead letters \d+ \| duplicates 0 \| missing 0", out), out
    assert "acknowledged and lost 0 | duplicates in the topic 0 | faults done 6 of 6" in out
    assert "exactly once: yes" in out and "hosts removed: yes" in out, out
    # every fault was in force: each says when it began and when it healed
    for fault in (
        "cut off from the other brokers",
        "cut off from every host",
        "cut off from every broker for 18 s (session timeout 6 s), still running",
        "receives from every host, sends to none",
        "link 200 ms each way, 20 % packets lost, for 60 s",
        "cut off from every host, SIGKILLed",
    ):
        assert re.search(rf"s: healed \(.*{re.escape(fault)}\)$", out, re.M), (fault, out)
    # the slow link did drop about a fifth of what crossed it
    passed, dropped = map(
        int, re.search(r"passed (\d+) delayed by 200 ms, dropped (\d+)", out).groups()
    )
    assert 0.1 < dropped / (passed + dropped) < 0.3, (passed, dropped)
    # nothing of the run is left: no namespace (its links and rules lived in them), no link
    # in this namespace, no state file
    assert set(netns.namespaces()) <= before
    assert root_links() == links_before
    network = json.loads((work / "network.json").read_text())
    assert not (netns.STATE_DIR / f"{network['run_id']}.json").exists()


def root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())

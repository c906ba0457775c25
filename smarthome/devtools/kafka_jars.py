"""The Kafka broker's jars, resolved from Maven Central through ``kafka/pom.xml`` once.

The broker runs as ``java -cp '<jars>/*' kafka.Kafka server.properties``: no Kafka download
and no Docker, only Maven's local resolution into ``.cache/kafka-jars``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from smarthome.devtools.workspace import CHECKOUT
from smarthome.errors import UserError

POM = CHECKOUT / "kafka" / "pom.xml"
DEFAULT_JARS_DIR = CHECKOUT / ".cache" / "kafka-jars"
STAMP_NAME = ".resolved"  # same stamp file as the Makefile's `jars` target


def ensure_jars(jars_dir: Path = DEFAULT_JARS_DIR, pom: Path = POM) -> Path:
    """Resolve the Kafka jars from Maven Central once (a stamp file marks success)."""
    stamp = jars_dir / STAMP_NAME
    fresh = stamp.exists() and stamp.stat().st_mtime >= pom.stat().st_mtime
    if fresh and any(jars_dir.glob("kafka_2.13-*.jar")):
        return jars_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise UserError(
            f"the Kafka jars are not in {jars_dir} and mvn is not on PATH; install Maven"
            " (e.g. `apt install maven`) and run `make jars`"
        )
    jars_dir.mkdir(parents=True, exist_ok=True)
    for old in jars_dir.glob("*.jar"):  # a version bump must not leave two Kafka versions
        old.unlink()
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={jars_dir}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"mvn could not resolve the Kafka jars from {pom}: {last[0]}")
    stamp.touch()
    return jars_dir

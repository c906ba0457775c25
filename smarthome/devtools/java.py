"""The JVM daemons' common ground: the java executable and the root cause in a JVM's log."""

from __future__ import annotations

import shutil
from pathlib import Path

from smarthome.errors import UserError


def java_executable() -> str:
    """The java binary, or a one-line UserError saying how to get Java 17."""
    java = shutil.which("java")
    if java is None:
        raise UserError(
            "java not found on PATH; install Java 17 (e.g. `apt install openjdk-17-jre-headless`"
            " or `conda env create -f environment.yml`)"
        )
    return java


def log_cause(path: Path, lines: int = 5) -> str:
    """The root cause if the log names one (the last 'Caused by'/first ERROR line), else its end."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    causes = [line for line in text if line.startswith("Caused by:")]
    if causes:
        return causes[-1].strip()
    errors = [line for line in text if " ERROR " in line]
    return " | ".join(line.strip() for line in (errors[:1] or text[-lines:]))

"""Finding a daemon this tooling started, from its Popen or its pid file, without trusting a
recycled pid: the process must still run ``main_class`` with our own ``config_file``."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import psutil


def our_process(
    popen: subprocess.Popen[bytes] | None, pid_file: Path, main_class: str, config_file: Path
) -> psutil.Process | None:
    """The live process we started (a zombie or someone else's pid is None)."""
    pid = popen.pid if popen is not None else None
    if pid is None and pid_file.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc if main_class in cmdline and str(config_file) in cmdline else None

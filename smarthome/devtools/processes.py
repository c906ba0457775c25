"""The daemons this tooling starts: finding one again from its Popen or its pid file without
trusting a recycled pid (the process must still run ``main_class`` with our own
``config_file``), and tying a child's life to its parent's."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import signal
import subprocess
from collections.abc import Callable
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


def parent_death_signal() -> Callable[[], object] | None:
    """A pre-exec hook making Linux SIGTERM the child when its parent dies (PR_SET_PDEATHSIG).

    prctl is looked up here, in the parent, so the forked child only makes one C call (no
    dlopen or imports between fork and exec, which is what makes pre-exec hooks risky).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: tests then rely on fixture teardown alone
    return functools.partial(prctl, 1, int(signal.SIGTERM))

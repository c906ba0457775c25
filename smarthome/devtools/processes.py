"""The daemons this tooling starts: finding one again from its Popen or its pid file without
trusting a recycled pid (the process must still run ``main_class`` with our own
``config_file``), and tying a child's life to its parent's: one child at a time
(``parent_death_signal``, which even SIGKILL of the parent honours) or all of a program's at
once (``stop_children_at_exit``, for SIGTERM, Ctrl-C and an ordinary exit)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import FrameType

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


def forget_process(popen: subprocess.Popen[bytes] | None, pid_file: Path) -> None:
    """After a stop: reap the child we started (so it is no zombie), remove its pid file."""
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(5)
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()


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


#: seconds the children get to stop after SIGTERM before they are killed
STOP_GRACE_SECONDS = 10.0


def stop_children_at_exit() -> None:
    """Nothing this program starts outlives it: on SIGTERM, Ctrl-C or exit, stop its children.

    For programs that start daemons in sessions of their own (a broker, a Spark cluster, a
    stage script) which neither the terminal's Ctrl-C nor a ``kill`` of the program reaches.
    SIGTERM stops the children, then exits with 143 (``finally`` blocks and ``atexit`` still
    run); Ctrl-C stops them, then raises KeyboardInterrupt as usual. Call it in
    ``__main__`` only: it replaces the process's SIGTERM and SIGINT handlers.
    """
    atexit.register(stop_children)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_children()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def stop_children(grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every descendant of this process, SIGKILL those still running after ``grace``."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=5)

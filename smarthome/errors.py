"""The one exception every stage turns into a one-line message instead of a traceback, and
the wording of the commonest one no stage can prevent: a full disk."""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

#: what a write fails with when the filesystem (or the user's quota) is full
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class UserError(Exception):
    """An expected failure (missing broker, dataset, folder, model set, bad flag value).

    The message is shown as one line, without a traceback, and should say what to do.
    """


@contextlib.contextmanager
def disk_full_is_a_user_error(folder: Path | str, consequence: str) -> Iterator[None]:
    """Turn a full disk under ``folder`` into a one-line UserError with its free space.

    ``consequence`` says what became of the work, e.g. that nothing was lost. The writer
    inside must already have undone its partial file: this only words the failure.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        raise UserError(
            f"no space left in {str(folder).rstrip('/')}/ ({_free_space(folder)} free): "
            f"free some space and run it again; {consequence}"
        ) from None


def _free_space(folder: Path | str) -> str:
    try:
        size, unit = float(shutil.disk_usage(folder).free), "B"
    except OSError:
        return "unknown"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"

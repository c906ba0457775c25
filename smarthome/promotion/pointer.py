"""The only writer of ``<model_dir>/champion.json``, the pointer to the served set.

Every write is a temporary file, fsynced, ``os.replace``d over the pointer, then the folder
fsynced: a reader (the API's workers, the stream scorer) sees the old pointer or the new one,
and a crash at any moment leaves one of them, never none. Read-modify-writes (a move, a
rollback) hold ``<model_dir>/.champion.lock`` (``flock``), so the training process and
``promote_model.py`` never lose each other's moves. Every move is announced through
``smarthome.promotion.events.champion_changed``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from smarthome.contracts import model_sets as registry
from smarthome.contracts.promotion import (
    ChampionEntry,
    ChampionPointer,
    MovedBy,
    champion_path,
    read_champion,
)
from smarthome.errors import UserError
from smarthome.promotion import events
from smarthome.promotion.events import ChampionChange

LOCK = ".champion.lock"
#: the pointer keeps this many past champions for rollback
HISTORY = 50


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def pointer_lock(model_dir: Path) -> Iterator[None]:
    """Hold the pointer's lock for a read-modify-write (waits for the other holder)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_pointer(model_dir: Path, pointer: ChampionPointer) -> None:
    """Replace the pointer atomically and durably (call while holding :func:`pointer_lock`)."""
    pointer.write(champion_path(model_dir))
    fd = os.open(model_dir, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def move_champion(model_dir: Path, set_name: str, by: MovedBy, note: str = "") -> ChampionChange:
    """Make ``set_name`` (a published set of ``model_dir``) the champion."""
    model_dir = Path(model_dir)
    _require_set(model_dir, set_name)
    with pointer_lock(model_dir):
        before = read_champion(model_dir)
        stamp = now()
        history = [
            *(before.history if before else []),
            ChampionEntry(set=set_name, at=stamp, by=by, note=note),
        ]
        write_pointer(
            model_dir, ChampionPointer(set=set_name, since=stamp, by=by, history=history[-HISTORY:])
        )
    change = ChampionChange(model_dir, before.set if before else None, set_name, by, note)
    events.champion_changed(change)
    return change


def roll_back(model_dir: Path) -> ChampionChange:
    """Make the previous champion the champion again (the pointer's history, newest last)."""
    model_dir = Path(model_dir)
    with pointer_lock(model_dir):
        before = read_champion(model_dir)
        if before is None:
            raise UserError(f"no champion in {model_dir} yet (no {champion_path(model_dir).name})")
        history = [e for e in before.history[:-1]]
        while history and history[-1].set == before.set:
            history.pop()  # the same set promoted twice in a row: go past it
        if not history:
            raise UserError(
                f"{before.set} is the only champion {model_dir} has had; nothing to roll back to "
                "(promote a set by name: promote_model.py promote SET)"
            )
        previous = history[-1].set
        _require_set(model_dir, previous)
        write_pointer(
            model_dir, ChampionPointer(set=previous, since=now(), by="rollback", history=history)
        )
    change = ChampionChange(model_dir, before.set, previous, "rollback", f"from {before.set}")
    events.champion_changed(change)
    return change


def _require_set(model_dir: Path, set_name: str) -> None:
    if not registry.SET_NAME.match(set_name) or not (model_dir / set_name).is_dir():
        known = ", ".join(p.name for p in registry.list_sets(model_dir)[-3:]) or "none"
        raise UserError(
            f"{set_name}: not a published model set in {model_dir} (newest: {known}; "
            "see promote_model.py status)"
        )

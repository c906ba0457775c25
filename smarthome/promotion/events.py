"""Listeners of the gate's decisions and of the champion pointer's moves.

Whatever else must follow the champion (a model registry's alias, a notification) registers
here instead of being called from the gate: ``on_decision(fn)`` gets every written
``promotion.json``, ``on_champion_change(fn)`` every move of ``champion.json`` (by the gate,
``--no-gate``, ``promote``, ``rollback`` or a retrain), after the file is in place. A failing
listener is one warning line; it never undoes or blocks a decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smarthome.contracts.promotion import MovedBy, Promotion

log = logging.getLogger("smarthome.promotion")


@dataclass(frozen=True)
class ChampionChange:
    model_dir: Path
    before: str | None  # the previous champion's folder name (None: there was no pointer)
    after: str
    by: MovedBy
    note: str = ""


DecisionListener = Callable[[Path, Promotion], None]
ChampionListener = Callable[[ChampionChange], None]
_decision_listeners: list[DecisionListener] = []
_champion_listeners: list[ChampionListener] = []


def on_decision(listener: DecisionListener) -> DecisionListener:
    """Call ``listener(set_dir, promotion)`` after every decision (usable as a decorator)."""
    _decision_listeners.append(listener)
    return listener


def on_champion_change(listener: ChampionListener) -> ChampionListener:
    """Call ``listener(change)`` after every move of the pointer (usable as a decorator)."""
    _champion_listeners.append(listener)
    return listener


def remove(listener: Callable) -> None:
    for listeners in (_decision_listeners, _champion_listeners):
        if listener in listeners:
            listeners.remove(listener)


def decided(set_dir: Path, promotion: Promotion) -> None:
    for listener in list(_decision_listeners):
        _call(listener, set_dir, promotion)


def champion_changed(change: ChampionChange) -> None:
    for listener in list(_champion_listeners):
        _call(listener, change)


def _call(listener: Callable, *args: object) -> None:
    try:
        listener(*args)
    except Exception as exc:  # a listener never undoes a decision
        name = getattr(listener, "__qualname__", repr(listener))
        log.warning("promotion listener %s failed: %s", name, exc)

"""``promote_model.py``: promote a set by name, roll back to the previous champion, status.

Both moves replace ``champion.json`` atomically under its lock (``pointer``); a running API
and stream scorer pick the new champion up at their next check, between requests.
"""

from __future__ import annotations

from pathlib import Path

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.promotion import read_champion, read_promotion
from smarthome.errors import UserError
from smarthome.promotion.events import ChampionChange
from smarthome.promotion.pointer import move_champion, roll_back


def resolve(model_dir: Path, given: str) -> str:
    """A set's folder name from its name or its number (the newest folder of that number)."""
    if registry.SET_NAME.match(given):
        return given
    if given.isdigit():
        matches = [
            p.name for p in registry.list_sets(model_dir) if registry.set_number(p) == int(given)
        ]
        if matches:
            return matches[-1]
    known = ", ".join(p.name for p in registry.list_sets(model_dir)[-3:]) or "none"
    raise UserError(f"{given}: no such model set in {model_dir} (newest: {known})")


def promote(model_dir: Path, given: str) -> ChampionChange:
    return move_champion(model_dir, resolve(model_dir, given), "promote", "by hand")


def rollback(model_dir: Path) -> ChampionChange:
    return roll_back(model_dir)


def status_lines(model_dir: Path) -> list[str]:
    """The champion and every set's decision, newest first, one line each."""
    try:
        pointer = read_champion(model_dir)
    except ContractError as exc:
        raise UserError(str(exc)) from None
    sets = registry.list_sets(model_dir)
    if pointer is None:
        newest = sets[-1].name if sets else "none"
        lines = [f"champion: none (no champion.json); newest-wins serves {newest}"]
    else:
        lines = [f"champion: {pointer.set} (by {pointer.by}, {pointer.since})"]
        past = [e.set for e in pointer.history[:-1]]
        if past:
            lines.append(f"rollback goes to: {past[-1]}")
    for folder in reversed(sets):
        try:
            decision = read_promotion(folder)
        except ContractError as exc:
            lines.append(f"  {folder.name}: promotion.json unreadable ({exc})")
            continue
        mark = "*" if pointer is not None and folder.name == pointer.set else " "
        if decision is None:
            lines.append(f"{mark} {folder.name}: no decision (trained before the gate)")
        else:
            verdict = "promoted" if decision.promoted else "held"
            lines.append(f"{mark} {folder.name}: {verdict} ({'; '.join(decision.reasons)})")
    return lines

"""MLflow tracking wired to training and to the promotion gate.

Each published set is logged as it is published (:func:`track_training` gives training the
callback); each gate decision goes onto its set's run; the alias ``champion`` follows the
champion pointer. The gate, ``--no-gate``, ``promote_model.py promote`` and ``rollback`` all
announce through ``smarthome.promotion.events``, so every move of the pointer moves the alias,
and a failed MLflow call is one warning line that never undoes a move.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from smarthome.contracts.artefact import ContractError
from smarthome.contracts.promotion import Promotion, champion_set
from smarthome.promotion import events
from smarthome.promotion.events import ChampionChange
from smarthome.tracking.mlflow_runs import SetTracker, Warn, connect, warn_line

if TYPE_CHECKING:
    from smarthome.training.build import BuiltSet


def decision_tags(promotion: Promotion) -> dict[str, str]:
    """The run tags of a gate decision: promoted or held, how, against which set, why."""
    return {
        "smarthome.promoted": str(promotion.promoted),
        "smarthome.promotion.mode": promotion.mode,
        "smarthome.promotion.champion_before": promotion.champion_before or "",
        "smarthome.promotion.reasons": "; ".join(promotion.reasons),
    }


def follow_champion(tracker: SetTracker) -> list[Callable]:
    """Register the listeners: a decision adds ``promotion.json`` and ``drift.json`` and the
    decision's tags to the set's run; a move of the pointer moves the alias. The listeners,
    for ``events.remove``."""

    def decided(set_dir: Path, promotion: Promotion) -> None:
        tracker.log_files(set_dir, decision_tags(promotion))

    def moved(change: ChampionChange) -> None:
        tracker.set_champion(Path(change.model_dir) / change.after)

    return [events.on_decision(decided), events.on_champion_change(moved)]


def sync_champion(tracker: SetTracker, model_dir: Path) -> bool:
    """Point the alias at the set the pointer names now (a store that missed moves made
    without tracking); False when there is no champion or after one warning line."""
    try:
        folder = champion_set(model_dir)
    except ContractError as exc:
        tracker.warn(f"alias 'champion' not checked: {exc}")
        return False
    return folder is not None and tracker.set_champion(folder)


def track_moves(uri: str | None, warn: Warn = warn_line) -> SetTracker | None:
    """Connect to ``uri`` (or ``MLFLOW_TRACKING_URI``) and have the alias and the runs follow
    this process's decisions and moves of the pointer; None when tracking is off."""
    tracker = connect(uri, warn)
    if tracker is not None:
        follow_champion(tracker)
    return tracker


def track_training(
    uri: str | None, model_dir: Path, warn: Warn = warn_line
) -> Callable[[BuiltSet], None] | None:
    """Start tracking into ``uri`` (or ``MLFLOW_TRACKING_URI``) for a training process: the
    champion followed, its alias checked now, and the callback that logs each published set
    with its step seconds; None when tracking is off (no URI, or one warning line)."""
    tracker = track_moves(uri, warn)
    if tracker is None:
        return None
    print(f"MLflow tracking: every set is logged to {tracker.display_uri}", flush=True)
    sync_champion(tracker, model_dir)

    def log_built(built: BuiltSet) -> None:
        if built.path is not None:
            tracker.log_set(built.path, built.seconds)

    return log_built

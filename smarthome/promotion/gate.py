"""The promotion gate: is a just-published set better than the champion? (DESIGN §16)

A candidate becomes champion when, on the candidate's own held-out rows (recomputed from its
batch files exactly as training split them) scored by both sets with the numpy scorer:

- its efficiency accuracy and weighted F1 are each no more than ``tolerance`` below the
  champion's (``--gate-tolerance``, default 0.02);
- its malfunction model's RMSE is no worse than predicting its training mean (the manifest's
  baseline) on the same rows;
- no drift alarm is open: none of its batches that the champion had not trained on drifted
  from the champion's training rows (``smarthome.drift``);
- the recomputed held-out rows are as many as training held out (else nothing is verified).

The first set is champion by default. ``--no-gate`` (``enforce=False``) makes every new set
champion and records the checks for information. The decision, each figure on both sides,
goes to ``<set>/promotion.json``; the pointer moves only when the set is promoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.drift import SET_DRIFT, Thresholds
from smarthome.contracts.manifest import Manifest
from smarthome.contracts.promotion import (
    PROMOTION,
    Check,
    Mode,
    Promotion,
    champion_set,
    read_champion,
)
from smarthome.drift.reports import now, set_drift
from smarthome.drift.stats import DEFAULT_THRESHOLDS
from smarthome.errors import UserError
from smarthome.promotion import events
from smarthome.promotion.evaluate import Scores, held_out_rows, score
from smarthome.promotion.pointer import move_champion
from smarthome.scoring.model_set import ModelSetError

Log = Callable[[str], None]

#: how much lower a candidate's held-out accuracy and F1 may be than the champion's
DEFAULT_TOLERANCE = 0.02
#: "no worse than the mean": RMSE at most the baseline's, up to float noise (a regressor
#: that predicts the mean differs from it in the last digits)
RMSE_SLACK = 1e-9


@dataclass(frozen=True)
class GateSettings:
    tolerance: float = DEFAULT_TOLERANCE
    enforce: bool = True  # False: --no-gate, every new set is champion
    thresholds: Thresholds = field(default_factory=lambda: DEFAULT_THRESHOLDS)


def current_champion(model_dir: Path, candidate: Path | None = None) -> Path | None:
    """The champion's folder; with no pointer, the newest set other than ``candidate`` (what
    newest-wins served before it)."""
    try:
        folder = champion_set(model_dir)
    except ContractError:
        folder = None
    if folder is not None or _has_pointer(model_dir):
        return folder
    others = [p for p in registry.list_sets(model_dir) if candidate is None or p != candidate]
    if candidate is not None:
        others = [p for p in others if p.name < candidate.name]
    return others[-1] if others else None


def _has_pointer(model_dir: Path) -> bool:
    try:
        return read_champion(model_dir) is not None
    except ContractError:
        return False


def adopt_newest(model_dir: Path, log: Log = print) -> None:
    """With sets but no pointer (trained before the gate), point at the newest, which is what
    was served: from now on a new set is served only once the gate promotes it."""
    if _has_pointer(model_dir):
        return
    newest = registry.newest_set(model_dir)
    if newest is not None:
        move_champion(model_dir, newest.name, "first", "the newest set when the gate started")
        log(f"champion: {newest.name} (the newest set, served before the gate)")


def decide(
    candidate: Path,
    model_dir: Path,
    batch_dir: Path,
    settings: GateSettings = GateSettings(),  # noqa: B008 (frozen)
    log: Log = print,
) -> Promotion:
    """Decide on a published set, write its ``promotion.json``, move the pointer if promoted."""
    manifest = Manifest.read(candidate / registry.MANIFEST)
    champion = current_champion(model_dir, candidate)
    if champion is None:
        promotion = Promotion(
            set=candidate.name, decided_at=now(), mode="first", promoted=True,
            champion_before=None, tolerance=settings.tolerance, held_out_rows=0, checks=[],
            reasons=["the first set: champion by default"],
        )  # fmt: skip
        return _record(candidate, model_dir, promotion, log)
    checks, held = _checks(candidate, manifest, champion, model_dir, batch_dir, settings)
    failed = [c for c in checks if not c.passed]
    mode: Mode = "gate" if settings.enforce else "no-gate"
    promoted = not failed or not settings.enforce
    if not failed:
        reasons = [f"every check passed against {champion.name}"]
    else:
        reasons = [f"{c.name}: {c.rule}" for c in failed]
        if not settings.enforce:
            reasons.insert(0, "--no-gate: every new set is champion; the gate would have held it")
    promotion = Promotion(
        set=candidate.name, decided_at=now(), mode=mode, promoted=promoted,
        champion_before=champion.name, tolerance=settings.tolerance, held_out_rows=held,
        checks=checks, reasons=reasons,
    )  # fmt: skip
    return _record(candidate, model_dir, promotion, log)


def _record(candidate: Path, model_dir: Path, promotion: Promotion, log: Log) -> Promotion:
    promotion.write(candidate / PROMOTION)
    events.decided(candidate, promotion)
    if promotion.promoted:
        move_champion(model_dir, candidate.name, promotion.mode, "; ".join(promotion.reasons))
        log(f"champion: {candidate.name} ({'; '.join(promotion.reasons)})")
    else:
        log(
            f"not promoted: {candidate.name}; {promotion.champion_before} stays champion "
            f"({'; '.join(promotion.reasons)})"
        )
    return promotion


def _checks(
    candidate: Path,
    manifest: Manifest,
    champion: Path,
    model_dir: Path,
    batch_dir: Path,
    settings: GateSettings,
) -> tuple[list[Check], int]:
    """The gate's checks, each with both sides; a part that cannot be evaluated fails."""
    tol = settings.tolerance
    try:
        rows = held_out_rows(manifest, batch_dir)
    except UserError as exc:
        return [_unverified("held-out rows", str(exc))], 0
    checks = [
        Check(
            name="held-out rows",
            passed=len(rows) == manifest.split.test_rows,
            candidate=float(len(rows)),
            champion=None,
            limit=float(manifest.split.test_rows),
            rule=f"recomputed from the batch files: {len(rows)}, training held out "
            f"{manifest.split.test_rows}",
        )
    ]
    if not len(rows):
        return [*checks, _unverified("scores", "no held-out rows to score")], 0
    try:
        mine = score(candidate, rows)
    except (ModelSetError, ValueError) as exc:
        return [*checks, _unverified("scores", f"the candidate cannot be scored: {exc}")], len(rows)
    theirs: Scores | None
    try:
        theirs = score(champion, rows)
    except (ModelSetError, ValueError) as exc:
        theirs = None
        checks.append(_unverified("champion", f"{champion.name} cannot be scored: {exc}", True))
    if theirs is not None:
        for name, ours, other in (
            ("efficiency accuracy", mine.accuracy, theirs.accuracy),
            ("efficiency F1", mine.f1, theirs.f1),
        ):
            checks.append(
                Check(
                    name=name,
                    passed=ours >= other - tol,
                    candidate=ours,
                    champion=other,
                    limit=other - tol,
                    rule=f"{ours:.4f} against the champion's {other:.4f} on {len(rows)} held-out "
                    f"rows; at most {tol:g} lower",
                )  # fmt: skip
            )
    mean = manifest.models.malfunction.baseline.mean
    baseline = float(np.sqrt(np.mean((rows["MalfunctionIncidents"].to_numpy() - mean) ** 2)))
    checks.append(
        Check(
            name="malfunction RMSE",
            passed=mine.rmse <= baseline * (1 + RMSE_SLACK),
            candidate=mine.rmse,
            champion=baseline,
            limit=baseline,
            rule=f"{mine.rmse:.4f} against predicting the training mean ({mean:.3f}): "
            f"{baseline:.4f}; no worse",
        )
    )
    try:
        drift = set_drift(manifest, champion, model_dir, batch_dir, settings.thresholds)
    except (UserError, ContractError) as exc:
        return [*checks, _unverified("drift", str(exc))], len(rows)
    drift.write(candidate / SET_DRIFT)
    alarmed = [b.batch for b in drift.batches if b.alarm]
    checks.append(
        Check(
            name="drift",
            passed=not drift.alarm,
            candidate=float(len(alarmed)),
            champion=None,
            limit=0.0,
            rule=(
                f"{len(alarmed)} of its {len(drift.batches)} new batch(es) drifted from "
                f"{champion.name}'s training rows ({', '.join(drift.drifted_columns)}); "
                "no drift alarm may be open"
                if alarmed
                else f"none of its {len(drift.batches)} new batch(es) drifted"
            ),
        )
    )
    return checks, len(rows)


def _unverified(name: str, why: str, passed: bool = False) -> Check:
    return Check(name=name, passed=passed, candidate=None, champion=None, limit=None, rule=why)


def decide_each(
    published: Sequence[Path],
    model_dir: Path,
    batch_dir: Path,
    settings: GateSettings,
    log: Log = print,
) -> list[Promotion]:
    return [decide(p, model_dir, batch_dir, settings, log) for p in published]


def after_retrain(published: Sequence[Path], model_dir: Path, log: Log = print) -> None:
    """After ``--retrain-all`` replaced every set: the champion moves to the retrained folder
    of its set number (its old folder is gone), and each retrained set records why it is or
    is not champion."""
    try:
        pointer = read_champion(model_dir)
    except ContractError:
        pointer = None
    by_number = {registry.set_number(p): p for p in published}
    champion: Path | None = None
    if pointer is not None and (model_dir / pointer.set).is_dir():
        champion = model_dir / pointer.set
    elif pointer is not None and registry.SET_NAME.match(pointer.set):
        champion = by_number.get(registry.set_number(pointer.set))
    if champion is None and published:
        champion = published[-1]
    for folder in published:
        promoted = folder == champion
        old = pointer.set if pointer else "none"
        reason = (
            f"retrained in place of the champion ({old}): the champion moves to it"
            if promoted
            else f"retrained; the champion is {champion.name if champion else 'none'}"
        )
        promotion = Promotion(
            set=folder.name, decided_at=now(), mode="retrain", promoted=promoted,
            champion_before=pointer.set if pointer else None, tolerance=0.0, held_out_rows=0,
            checks=[], reasons=[reason],
        )  # fmt: skip
        promotion.write(folder / PROMOTION)
        events.decided(folder, promotion)
    if champion is not None and (pointer is None or pointer.set != champion.name):
        move_champion(model_dir, champion.name, "retrain", "retrained set of the same number")
        log(f"champion: {champion.name} (retrained)")

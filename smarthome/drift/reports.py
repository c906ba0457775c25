"""Drift reports of batch files and of sets, against the champion's training rows.

The training process runs them (DESIGN §17): it reads every batch file anyway and knows the
champion. Each new batch file is checked once, against the champion of that moment, and its
report kept in ``<model_dir>/drift/``; a candidate set's report gathers its batches that its
champion had not trained on, checked against that champion (reusing the batch reports made
against it), and is what the promotion gate reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from smarthome.contracts import drift as contract
from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.drift import BatchDrift, SetDrift, Thresholds
from smarthome.contracts.manifest import Manifest
from smarthome.drift.stats import DEFAULT_THRESHOLDS, column_drift
from smarthome.errors import UserError
from smarthome.scoring.batch_rows import batch_paths, read_rows, split_rows

Log = Callable[[str], None]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Reference:
    """A champion's training rows (its batch files, its training side of the split)."""

    def __init__(self, champion_dir: Path, batch_dir: Path):
        manifest = Manifest.read(champion_dir / registry.MANIFEST)
        self.set = champion_dir.name
        self.batch_files = set(manifest.batch_files)
        rows = read_rows(batch_paths(batch_dir, manifest.batch_files))
        self.rows, _ = split_rows(rows, manifest.split.seed, manifest.split.test_percent)


def compare(
    batch: Path, reference: Reference, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> BatchDrift:
    """One batch file against the reference."""
    rows = read_rows([batch])
    columns = column_drift(reference.rows, rows, thresholds) if len(rows) else []
    drifted = [c.column for c in columns if c.drifted]
    return BatchDrift(
        batch=batch.name,
        reference_set=reference.set,
        reference_rows=len(reference.rows),
        rows=len(rows),
        checked_at=now(),
        thresholds=thresholds,
        columns=columns,
        alarm=bool(drifted),
        drifted_columns=drifted,
    )


def stored(model_dir: Path, batch_name: str) -> BatchDrift | None:
    path = contract.batch_report_path(model_dir, batch_name)
    if not path.exists():
        return None
    try:
        return BatchDrift.read(path)
    except ContractError:
        return None  # written again by the caller


def describe(report: BatchDrift) -> str:
    """``<batch>: UsageHoursPerDay (KS p 1e-40, PSI 1.23)`` for a log line."""
    parts = [
        f"{c.column} ({c.test.upper()} p {c.p_value:.2g}, PSI {c.psi:.2f})"
        for c in report.columns
        if c.drifted
    ]
    return f"{report.batch}: {', '.join(parts)} against {report.reference_set}'s training rows"


def check_new_batches(
    batch_files: Sequence[Path],
    model_dir: Path,
    batch_dir: Path,
    champion_dir: Path | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    log: Log = print,
) -> list[BatchDrift]:
    """Check every batch file that has no report yet and that the champion did not train on;
    the new reports (each written to ``<model_dir>/drift/``). Without a champion there is
    nothing to compare with: no report."""
    if champion_dir is None:
        return []
    try:
        trained_on = set(Manifest.read(champion_dir / registry.MANIFEST).batch_files)
    except ContractError as exc:
        log(f"drift check skipped: {exc}")
        return []
    todo = [
        p for p in batch_files if p.name not in trained_on and stored(model_dir, p.name) is None
    ]
    if not todo:
        return []
    try:
        reference = Reference(champion_dir, batch_dir)
    except (UserError, ContractError) as exc:  # training goes on; the gate will say why
        log(f"drift check skipped: {exc}")
        return []
    reports = []
    for path in todo:
        report = compare(path, reference, thresholds)
        save(model_dir, report)
        if report.alarm:
            log(f"drift alarm: {describe(report)}")
        reports.append(report)
    return reports


def save(model_dir: Path, report: BatchDrift) -> None:
    folder = contract.drift_dir(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report.write(contract.batch_report_path(model_dir, report.batch))


def set_drift(
    candidate: Manifest,
    champion_dir: Path | None,
    model_dir: Path,
    batch_dir: Path,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> SetDrift:
    """The candidate's batches its champion had not trained on, against that champion."""
    if champion_dir is None:
        return SetDrift(
            set=candidate.name, reference_set=None, checked_at=now(), batches=[], alarm=False,
            drifted_columns=[],
        )  # fmt: skip
    reference: Reference | None = None
    champion_files = set(Manifest.read(champion_dir / registry.MANIFEST).batch_files)
    batches = []
    for name in candidate.batch_files:
        if name in champion_files:
            continue
        report = stored(model_dir, name)
        if report is None or report.reference_set != champion_dir.name:
            reference = reference or Reference(champion_dir, batch_dir)
            fresh = compare(batch_paths(batch_dir, [name])[0], reference, thresholds)
            if report is None:
                save(model_dir, fresh)
            report = fresh
        batches.append(report)
    drifted = sorted({c for b in batches for c in b.drifted_columns})
    return SetDrift(
        set=candidate.name,
        reference_set=champion_dir.name,
        checked_at=now(),
        batches=batches,
        alarm=any(b.alarm for b in batches),
        drifted_columns=drifted,
    )


def history_frame(reports: Sequence[BatchDrift]) -> pd.DataFrame:
    """One row per batch and column (for charts and metrics): batch, order, column, PSI, ..."""
    rows = [
        {
            "batch": r.batch,
            "order": i + 1,
            "reference_set": r.reference_set,
            "column": c.column,
            "test": c.test,
            "statistic": c.statistic,
            "p_value": c.p_value,
            "psi": c.psi,
            "drifted": c.drifted,
        }
        for i, r in enumerate(reports)
        for c in r.columns
    ]
    return pd.DataFrame(rows)

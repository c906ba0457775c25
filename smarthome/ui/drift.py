"""The Drift tab: each batch's drift per column over time, and the promotion gate's decisions.

Reads ``GET /drift`` and ``GET /models`` only (DESIGN §16, §17); the tables are pure functions
of the API's answers, the charts Altair.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from smarthome.contracts.api import SetEntry
from smarthome.contracts.drift import BatchDrift
from smarthome.ui.client import ApiError
from smarthome.ui.common import client, lang, show_error, tr
from smarthome.ui.i18n import t
from smarthome.ui.sections import api_usable, main_notice


def drift_frame(batches: list[BatchDrift]) -> pd.DataFrame:
    """One row per batch and column, batches numbered in order (1 = oldest checked)."""
    rows = [
        {
            "order": i + 1,
            "batch": report.batch,
            "reference_set": report.reference_set,
            "column": column.column,
            "test": column.test.upper(),
            "p_value": column.p_value,
            "psi": column.psi,
            "drifted": column.drifted,
        }
        for i, report in enumerate(batches)
        for column in report.columns
    ]
    columns = ["order", "batch", "reference_set", "column", "test", "p_value", "psi", "drifted"]
    return pd.DataFrame(rows, columns=columns)


def psi_chart(frame: pd.DataFrame, threshold: float, lang: str) -> alt.LayerChart:
    """PSI of every column over the batches, with the alarm threshold as a dashed rule."""
    x = alt.X("order:Q", title=t("drift_batch", lang), axis=alt.Axis(tickMinStep=1, format="d"))
    tooltip = [
        alt.Tooltip("batch:N", title=t("drift_batch_file", lang)),
        alt.Tooltip("column:N", title=t("drift_column", lang)),
        alt.Tooltip("psi:Q", title="PSI", format=".3f"),
        alt.Tooltip("test:N", title=t("drift_test", lang)),
        alt.Tooltip("p_value:Q", title="p", format=".2g"),
        alt.Tooltip("reference_set:N", title=t("drift_reference", lang)),
    ]
    lines = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("psi:Q", title="PSI"),
            color=alt.Color("column:N", title=t("drift_column", lang)),
            tooltip=tooltip,
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"psi": [threshold]}))
        .mark_rule(strokeDash=[5, 4], color="#e76f51")
        .encode(y="psi:Q")
    )
    return (lines + rule).properties(title=t("drift_psi_title", lang), height=280)


def alarm_chart(frame: pd.DataFrame, lang: str) -> alt.Chart:
    """A grid of batch x column, coloured where the column drifted."""
    drifted, steady = t("drift_drifted", lang), t("drift_steady", lang)
    cells = frame.assign(state=[drifted if d else steady for d in frame["drifted"]])
    return (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X("order:O", title=t("drift_batch", lang)),
            y=alt.Y("column:N", title=None),
            color=alt.Color(
                "state:N",
                title=None,
                scale=alt.Scale(domain=[steady, drifted], range=["#a8dadc", "#e63946"]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=[
                alt.Tooltip("batch:N", title=t("drift_batch_file", lang)),
                alt.Tooltip("column:N", title=t("drift_column", lang)),
                alt.Tooltip("psi:Q", title="PSI", format=".3f"),
                alt.Tooltip("p_value:Q", title="p", format=".2g"),
            ],
        )
        .properties(title=t("drift_alarm_title", lang), height=alt.Step(24))
    )


def promotion_table(sets: list[SetEntry], lang: str) -> pd.DataFrame:
    """One row per set, newest first: champion or not, the gate's verdict and its reasons."""
    rows = []
    for entry in sets:
        decision = entry.promotion
        if decision is None:
            verdict, reasons = t("drift_undecided", lang), ""
        else:
            verdict = t("drift_promoted" if decision.promoted else "drift_held", lang)
            reasons = "; ".join(decision.reasons)
        rows.append(
            {
                t("set", lang): entry.name,
                t("drift_champion_col", lang): "★" if entry.champion else "",
                t("drift_verdict", lang): verdict,
                t("drift_reasons", lang): reasons,
            }
        )
    return pd.DataFrame(rows)


def drift_section() -> None:
    st.markdown(tr("drift_intro"))
    if not api_usable():
        main_notice()
        return
    try:
        drift = client().drift()
        sets = client().models()
    except ApiError as error:
        show_error(error)
        return
    champion = drift.champion or next((s.name for s in sets if s.loaded), None)
    st.markdown(f"**{tr('drift_champion')}:** `{champion or tr('unknown')}`")
    if sets:
        st.dataframe(promotion_table(sets, lang()), hide_index=True)
    if not drift.batches:
        st.info(tr("drift_none"))
        return
    newest = drift.batches[-1]
    if newest.alarm:
        st.error(tr("drift_alarm", batch=newest.batch, columns=", ".join(newest.drifted_columns)))
    else:
        st.success(tr("drift_ok", batch=newest.batch))
    frame = drift_frame(drift.batches)
    if frame.empty:
        return
    threshold = newest.thresholds.psi
    st.altair_chart(psi_chart(frame, threshold, lang()), width="stretch")
    st.altair_chart(alarm_chart(frame, lang()), width="stretch")
    st.caption(
        tr("drift_rule", alpha=f"{newest.thresholds.alpha:g}", psi=f"{newest.thresholds.psi:g}")
    )

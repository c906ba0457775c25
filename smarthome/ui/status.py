"""The Pipeline tab: the stream watched live, stage by stage, from ``GET /pipeline``.

Producer -> topic -> consumer -> batches -> training -> API, refreshed every couple of
seconds on its own (a Streamlit fragment), with records/s into the topic over the last
minutes computed from the successive looks this browser session has made.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from smarthome.observe.status import PipelineStatus
from smarthome.ui.client import ApiError
from smarthome.ui.common import client, show_error, tr

REFRESH_SECONDS = 2
HISTORY_SECONDS = 300


def _history() -> deque[tuple[float, int]]:
    """(time, records in the topic) of this session's looks, the last few minutes."""
    return st.session_state.setdefault("_status_history", deque(maxlen=HISTORY_SECONDS))


def look() -> tuple[PipelineStatus | None, ApiError | None]:
    """One ``GET /pipeline``, remembered for the records/s chart."""
    try:
        view = client().pipeline()
    except ApiError as error:
        return None, error
    if view.kafka.records_in_topic is not None:
        _history().append((time.time(), view.kafka.records_in_topic))
    return view, None


def stream_running() -> bool:
    """Whether records arrived in the last minute or wait in the topic (tab goes first)."""
    view, _ = look()
    if view is None:
        return False
    points = [p for p in _history() if p[0] > time.time() - 60]
    grew = len(points) >= 2 and points[-1][1] > points[0][1]
    return grew or bool(view.kafka.total_lag) or view.model_sets.training


def rates() -> pd.DataFrame:
    """Records/s into the topic between successive looks."""
    points = list(_history())
    rows = [
        {"time": pd.Timestamp(t1, unit="s"), "rate": (n1 - n0) / (t1 - t0)}
        for (t0, n0), (t1, n1) in zip(points, points[1:], strict=False)
        if t1 > t0 and n1 >= n0
    ]
    return pd.DataFrame(rows, columns=["time", "rate"])


def _rate_chart(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("rate:Q", title=tr("pipe_rate_axis")),
            tooltip=[alt.Tooltip("rate:Q", format=",.0f")],
        )
        .properties(height=180)
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@st.fragment(run_every=REFRESH_SECONDS)
def status_section() -> None:
    st.markdown(tr("pipe_intro"))
    view, error = look()
    if error is not None:
        show_error(error)
        return
    assert view is not None
    kafka, batches, sets = view.kafka, view.batches, view.model_sets
    frame = rates()
    now_rate = frame["rate"].iloc[-1] if not frame.empty else 0.0
    columns = st.columns(6)
    stages: list[tuple[str, str, str]] = [
        ("pipe_producer", f"{now_rate:,.0f}", tr("pipe_rate")),
        ("pipe_topic", _count(kafka.records_in_topic), tr("pipe_records", topic=kafka.topic)),
        ("pipe_consumer", _count(kafka.total_lag), tr("pipe_lag")),
        ("pipe_batches", f"{batches.files:,}", tr("pipe_rows", rows=f"{batches.rows:,}")),
        (
            "pipe_training",
            tr("pipe_training_now", set=sets.count + 1) if sets.training else tr("pipe_idle"),
            tr("pipe_sets", count=sets.count),
        ),
        ("pipe_api", sets.newest.split("_")[-1] if sets.newest else "-",
         tr("pipe_newest_age", age=_age(sets.newest_age_seconds)) if sets.newest
         else tr("pipe_no_set")),
    ]  # fmt: skip
    for column, (title, value, caption) in zip(columns, stages, strict=True):
        with column:
            st.metric(tr(title), value)
            st.caption(caption)
    if not kafka.reachable:
        st.warning(tr("pipe_kafka_down", servers=kafka.bootstrap_servers, error=kafka.error))
    elif kafka.partitions:
        lag = pd.DataFrame([p.model_dump() for p in kafka.partitions])
        st.dataframe(_partition_table(lag), hide_index=True)
    if sets.newest_error:
        st.warning(tr("pipe_set_unreadable", error=sets.newest_error))
    st.caption(tr("pipe_rejected", count=batches.rejected))
    if not frame.empty:
        st.altair_chart(_rate_chart(frame), width="stretch")
    st.caption(tr("status_checked", time=time.strftime("%H:%M:%S")))


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _partition_table(frame: pd.DataFrame) -> Any:
    return frame.rename(
        columns={
            "partition": tr("pipe_partition"),
            "end_offset": tr("pipe_end_offset"),
            "committed": tr("pipe_committed"),
            "lag": tr("pipe_lag"),
        }
    )

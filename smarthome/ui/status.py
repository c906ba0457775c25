"""The Pipeline tab: the stream watched live, stage by stage, from ``GET /pipeline``.

Producer -> topic -> consumer -> batches -> training -> API, and the stream scorer beside
them, refreshed every couple of seconds on its own (a Streamlit fragment), with records/s into
the topic over the last minutes computed from the successive looks this browser session has
made.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from smarthome.contracts.model_sets import set_number
from smarthome.observe.status import ModelSetsStatus, PipelineStatus, ScorerStatus
from smarthome.ui.client import ApiError
from smarthome.ui.common import client, show_error, tr

REFRESH_SECONDS = 2
HISTORY_SECONDS = 300


def _history() -> deque[tuple[float, int]]:
    """(time, records in the topic) of this browser session's looks, the last few minutes
    (kept in Streamlit's session state)."""
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


#: the rate chart's axis labels (d3 formats): Vega's defaults label a sub-second time tick
#: ".500" (milliseconds) and, when every rate is equal, the rate ticks "0.000000"
TIME_FORMAT = "%H:%M:%S"
RATE_FORMAT = ",.0f"


def rate_chart(frame: pd.DataFrame) -> alt.Chart:
    """Records/s over time: time ticks a whole second apart, rate ticks a whole record/s apart
    (the axis starts at 0 and reaches at least 1, so a flat or idle stream still has a scale)."""
    top = max(1.0, float(frame["rate"].max())) if not frame.empty else 1.0
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format=TIME_FORMAT, tickMinStep=1000)),
            y=alt.Y(
                "rate:Q",
                title=tr("pipe_rate_axis"),
                axis=alt.Axis(format=RATE_FORMAT, tickMinStep=1),
                scale=alt.Scale(domain=[0, top], nice=True),
            ),
            tooltip=[
                alt.Tooltip("time:T", format=TIME_FORMAT),
                alt.Tooltip("rate:Q", format=RATE_FORMAT),
            ],
        )
        .properties(height=180)
    )


def training_state(sets: ModelSetsStatus) -> tuple[str, str]:
    """The Training stage's value and caption: the set being built (its real number), a
    spark_training.py that waits for batches (``--watch`` between sets), or none running."""
    if sets.training_sets:
        numbers = ", ".join(str(set_number(name)) for name in sets.training_sets)
        return tr("pipe_training_now", set=numbers), tr("pipe_sets", count=sets.count)
    if sets.trainer_running:
        return tr("pipe_trainer_waiting"), tr("pipe_trainer_waiting_caption", count=sets.count)
    return tr("pipe_trainer_stopped"), tr("pipe_sets", count=sets.count)


def scorer_state(scorer: ScorerStatus) -> tuple[str, str]:
    """The Scorer stage's value (records not yet scored) and caption (its processes and the
    predictions topic's size)."""
    if not scorer.reachable or scorer.total_lag is None:
        return "-", tr("pipe_scorer_unknown")
    size = tr(
        "pipe_scorer_offsets",
        count=_count(scorer.predictions_end_offsets),
        topic=scorer.predictions_topic,
    )
    if scorer.members == 0:
        return f"{scorer.total_lag:,}", tr("pipe_scorer_none", size=size)
    return f"{scorer.total_lag:,}", tr("pipe_scorer_members", count=scorer.members, size=size)


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
    columns = st.columns(7)
    stages: list[tuple[str, str, str]] = [
        ("pipe_producer", f"{now_rate:,.0f}", tr("pipe_rate")),
        ("pipe_topic", _count(kafka.records_in_topic), tr("pipe_records", topic=kafka.topic)),
        ("pipe_consumer", _count(kafka.total_lag), tr("pipe_lag")),
        ("pipe_batches", f"{batches.files:,}", tr("pipe_rows", rows=f"{batches.rows:,}")),
        ("pipe_training", *training_state(sets)),
        ("pipe_api", sets.newest.split("_")[-1] if sets.newest else "-",
         tr("pipe_newest_age", age=_age(sets.newest_age_seconds)) if sets.newest
         else tr("pipe_no_set")),
        ("pipe_scorer", *scorer_state(view.scorer)),
    ]  # fmt: skip
    for column, (title, value, caption) in zip(columns, stages, strict=True):
        with column:
            st.metric(tr(title), value)
            st.caption(caption)
    if not kafka.reachable:
        st.warning(tr("pipe_kafka_down", servers=kafka.bootstrap_servers, error=kafka.error))
    elif kafka.partitions:
        st.dataframe(partition_table(view), hide_index=True)
    if sets.newest_error:
        st.warning(tr("pipe_set_unreadable", error=sets.newest_error))
    st.caption(tr("pipe_rejected", count=batches.rejected))
    if not frame.empty:
        st.altair_chart(rate_chart(frame), width="stretch")
    st.caption(tr("status_checked", time=time.strftime("%H:%M:%S")))


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def partition_table(view: PipelineStatus) -> Any:
    """Per partition of the topic: end offset, the batch consumer's committed offset and lag,
    and the stream scorer's."""
    frame = pd.DataFrame([p.model_dump() for p in view.kafka.partitions])
    scorer = {p.partition: p for p in view.scorer.partitions}
    frame["scorer_committed"] = [
        scorer[n].committed if n in scorer else None for n in frame["partition"]
    ]
    frame["scorer_lag"] = [scorer[n].lag if n in scorer else None for n in frame["partition"]]
    return frame.rename(
        columns={
            "partition": tr("pipe_partition"),
            "end_offset": tr("pipe_end_offset"),
            "committed": tr("pipe_committed"),
            "lag": tr("pipe_lag"),
            "scorer_committed": tr("pipe_scorer_committed"),
            "scorer_lag": tr("pipe_scorer_lag"),
        }
    )

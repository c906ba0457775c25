"""The Live tab: the stream scorer's newest predictions and alerts as they arrive.

Read from ``GET /live`` every couple of seconds on its own (a Streamlit fragment, like the
Pipeline tab), with the predictions' rate and their latency from the record's produce time to
its scoring.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from smarthome.contracts.predictions import Alert, Prediction
from smarthome.observe.live import LiveView
from smarthome.ui.client import ApiError
from smarthome.ui.common import client, fmt_pct, show_error, tr

REFRESH_SECONDS = 2
#: how many of the newest predictions (and alerts) the tab lists
LIMIT = 50


def _clock(ms: int) -> str:
    """A message time as the page's local clock time, to the millisecond."""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def prediction_rows(predictions: list[Prediction]) -> pd.DataFrame:
    """One row per prediction, newest first, headed in the page's language."""
    rows = [
        {
            tr("live_scored_at"): _clock(p.scored_time_ms),
            tr("live_user"): p.user_id,
            tr("device"): p.device_type,
            tr("live_label"): p.label,
            tr("live_probability"): fmt_pct(p.probability_of_predicted_class),
            tr("live_malfunctions"): round(p.predicted_malfunctions, 2),
            tr("live_segment"): p.device_segment_id,
            tr("live_latency"): p.scored_time_ms - p.event_time_ms,
            tr("status_set"): p.model_set,
        }
        for p in predictions
    ]
    return pd.DataFrame(rows)


def alert_rows(alerts: list[Alert]) -> pd.DataFrame:
    """One row per alert, newest first, with its reasons in words."""
    rows = [
        {
            tr("live_scored_at"): _clock(a.prediction.scored_time_ms),
            tr("live_user"): a.prediction.user_id,
            tr("device"): a.prediction.device_type,
            tr("live_reasons"): "; ".join(a.reasons),
            tr("status_set"): a.prediction.model_set,
        }
        for a in alerts
    ]
    return pd.DataFrame(rows)


def figures(view: LiveView) -> list[tuple[str, str, str]]:
    """The tab's headline figures: (label, value, caption)."""
    rate = view.predictions_per_second
    p50, worst = view.latency_ms_p50, view.latency_ms_max
    age = view.newest_age_seconds
    return [
        (tr("live_predictions"), f"{len(view.predictions):,}", tr("live_newest_n", n=LIMIT)),
        (tr("live_alerts"), f"{len(view.alerts):,}", tr("live_newest_n", n=LIMIT)),
        (
            tr("live_rate"),
            "-" if rate is None else f"{rate:,.0f}",
            tr("live_rate_caption") if age is None else tr("live_newest_age", age=f"{age:,.0f}"),
        ),
        (
            tr("live_latency_p50"),
            "-" if p50 is None else f"{p50:,.0f} ms",
            tr("live_latency_max", max="-" if worst is None else f"{worst:,.0f} ms"),
        ),
    ]


@st.fragment(run_every=REFRESH_SECONDS)
def live_section() -> None:
    st.markdown(tr("live_intro"))
    try:
        view = client().live(LIMIT)
    except ApiError as error:
        show_error(error)
        return
    if not view.reachable:
        st.warning(tr("live_kafka_down", servers=view.bootstrap_servers, error=view.reason))
    elif view.reason:
        st.info(view.reason)
    for column, (label, value, caption) in zip(st.columns(4), figures(view), strict=True):
        with column:
            st.metric(label, value)
            st.caption(caption)
    st.subheader(tr("live_alerts_title", topic=view.alerts_topic))
    if view.alerts:
        st.dataframe(alert_rows(view.alerts), hide_index=True)
    else:
        st.caption(tr("live_none"))
    st.subheader(tr("live_predictions_title", topic=view.predictions_topic))
    if view.predictions:
        st.dataframe(prediction_rows(view.predictions), hide_index=True)
    else:
        st.caption(tr("live_none"))
    if view.unreadable:
        st.warning(tr("live_unreadable", count=view.unreadable))
    st.caption(tr("status_checked", time=time.strftime("%H:%M:%S")))

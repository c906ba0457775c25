"""The page sections besides the forms: status, model history, segments, bulk predictions."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Any

import streamlit as st

from smarthome.contracts.api import SegmentsResponse, StatusResponse
from smarthome.contracts.records import DEVICE_FEATURES
from smarthome.ui import bulk, charts, data
from smarthome.ui import client as client_module
from smarthome.ui.client import ApiClient, ApiError
from smarthome.ui.common import api_url, client, lang, show_error, tr

STATUS_REFRESH_SECONDS = 5
PROBE_TIMEOUT = 3.0  # a status check that waits longer than this reports a slow API


def probe() -> tuple[StatusResponse | None, ApiError | None]:
    """``GET /`` with a short timeout."""
    try:
        timeout = min(PROBE_TIMEOUT, client_module.READ_TIMEOUT)
        return ApiClient(api_url(), timeout, timeout).status(), None
    except ApiError as error:
        return None, error


def api_usable() -> bool:
    """False when the API is down or slow: sections then skip their calls (no stacked waits)."""
    error = st.session_state.get("_probe_error")
    return error is None or error.kind not in (
        "unreachable",
        "timeout",
        "not_found",
        "bad_response",
    )


def run_probe() -> None:
    """Probe once per page run; every section reads the result instead of asking again."""
    body, error = probe()
    st.session_state["_probe_fresh"] = True
    st.session_state["_probe_body"], st.session_state["_probe_error"] = body, error
    st.session_state["_probe_set"] = body.model_set if body else None
    st.session_state.pop("_segments", None)


def _status_body() -> None:
    if st.session_state.pop("_probe_fresh", False):  # the page run just probed
        body, error = st.session_state["_probe_body"], st.session_state["_probe_error"]
    else:
        body, error = probe()
    loaded = body.model_set if body else None
    seen = (st.session_state.get("_probe_set"), st.session_state.get("_probe_error") is None)
    if (loaded, error is None) != seen:
        st.rerun(scope="app")  # a new set or the API came back: redraw charts and segments
    st.subheader(tr("status"))
    if error is not None:
        show_error(error)
    elif body is None or body.manifest is None:
        st.warning(tr("err_no_model"))
    else:
        st.success(tr("status_ok"))
        st.markdown(
            f"**{tr('status_set')}:** `{body.model_set}`  \n"
            f"**{tr('status_trained')}:** {when(body.manifest.created_at)}  \n"
            f"**{tr('status_rows')}:** {body.manifest.rows}"
        )
    st.caption(tr("status_checked", time=time.strftime("%H:%M:%S")))


def when(stamp: str) -> str:
    """An ISO timestamp with an offset (as the manifest holds it) as ``2026-01-31 14:05 UTC``."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@st.fragment(run_every=STATUS_REFRESH_SECONDS)
def status_panel() -> None:
    """The API's status, re-checked on its own every few seconds."""
    _status_body()


def main_notice() -> None:
    """The same clear message at the top of the page when the API cannot be used."""
    error = st.session_state.get("_probe_error")
    if error is not None:
        show_error(error)


def history_section() -> None:
    st.markdown(tr("history_intro"))
    if not api_usable():
        main_notice()
        return
    try:
        sets = client().models()
    except ApiError as error:
        show_error(error)
        return
    if not sets:
        st.info(tr("history_none"))
        return
    history = data.history_frame(sets)
    if len(sets) == 1:
        st.caption(tr("history_one_set"))
    for broken in data.unreadable(sets):
        st.warning(tr("history_unreadable", set=broken.name, error=broken.error))
    for metric in data.HISTORY_METRICS:
        if (history["metric"] == metric).any():
            st.altair_chart(charts.learning_curve(history, metric, lang()), width="stretch")
    st.markdown(f"**{tr('sets_table')}**")
    table = data.sets_table(sets)
    st.dataframe(table.rename(columns={"set": tr("set"), "rows": tr("rows")}), hide_index=True)


def load_segments() -> tuple[SegmentsResponse | None, ApiError | None]:
    """``GET /segments``: the loaded set's cluster profiles, fetched once per page run."""
    if "_segments" in st.session_state:
        return st.session_state["_segments"]
    result: tuple[SegmentsResponse | None, ApiError | None] = (None, None)
    if api_usable():
        try:
            result = (client().segments(), None)
        except ApiError as error:
            result = (None, error)
    st.session_state["_segments"] = result
    return result


def segments_section() -> None:
    st.markdown(tr("segments_intro"))
    if not api_usable():
        main_notice()
        return
    segments, error = load_segments()
    if error is not None:
        show_error(error)
        return
    if segments is None:  # the API cannot be used: main_notice said so
        return
    overall = segments.clusters.overall.means
    for segment in segments.clusters.clusters:
        st.subheader(
            tr("segment_header", id=segment.id, size=segment.size, share=f"{segment.share:.0%}")
        )
        if name := segment.named(lang()):
            st.markdown(f"**{name}**")
        st.info(segment.describe(lang()))
        left, right = st.columns(2)
        profile = data.profile_frame(segment, overall)
        if not profile.empty:
            left.markdown(f"**{tr('segment_vs_avg', id=segment.id)}**")
            left.altair_chart(charts.profile_chart(profile, lang()), width="stretch")
        if segment.size:
            right.altair_chart(
                charts.device_mix_chart(data.device_mix_frame(segment), lang()), width="stretch"
            )
        st.caption(f"{tr('efficiency_rate')}: {segment.efficiency_rate:.1%}")


def bulk_section() -> None:
    st.markdown(tr("bulk_intro", columns=", ".join(f"`{c}`" for c in DEVICE_FEATURES)))
    st.download_button(
        tr("bulk_template"),
        bulk.template_csv(),
        "devices_example.csv",
        "text/csv",
        key="bulk_template",
    )
    upload = st.file_uploader(tr("bulk_upload"), type=["csv"], key="bulk_file")
    if upload is None:
        return
    raw = upload.getvalue()
    cache_key = (hashlib.sha256(raw).hexdigest(), api_url(), st.session_state.get("_probe_set"))
    cached = st.session_state.get("_bulk")
    if cached is None or cached[0] != cache_key:
        try:
            result: Any = bulk.predict_bulk(client(), bulk.read_devices(raw))
        except (bulk.BulkInputError, ApiError) as error:
            result = error
        cached = (cache_key, result)
        st.session_state["_bulk"] = cached
    result = cached[1]
    if isinstance(result, bulk.BulkInputError):
        st.error(tr(result.key, **result.values))
        return
    if isinstance(result, ApiError):
        show_error(result)
        return
    total = len(result.table)
    if result.rejected == 0:
        st.success(tr("bulk_summary_ok", total=total))
    else:
        st.warning(tr("bulk_summary", total=total, ok=result.predicted, bad=result.rejected))
    st.dataframe(
        result.table,
        hide_index=True,
        column_config={
            "probability_of_predicted_class": st.column_config.NumberColumn(format="%.3f"),
            "predicted_malfunctions": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    st.download_button(
        tr("bulk_download"),
        result.table.to_csv(index=False).encode(),
        "predictions.csv",
        "text/csv",
        key="bulk_download",
        type="primary",
    )

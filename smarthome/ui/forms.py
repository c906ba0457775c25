"""The original's three forms (efficiency, malfunction, segment) and their results.

A result is kept in ``st.session_state`` so it survives reruns (language switch, status
refresh) and is drawn in the current language.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from smarthome.contracts.api import EfficiencyResult, MalfunctionResult, SegmentResult
from smarthome.contracts.records import DEVICE_FEATURES, DEVICE_TYPES, MALFUNCTION_FEATURES
from smarthome.ui import charts, data
from smarthome.ui.client import ApiError
from smarthome.ui.common import client, fmt_float, fmt_pct, lang, show_error, tr
from smarthome.ui.sections import load_segments

DEFAULTS: dict[str, Any] = {
    "DeviceType": "Thermostat",
    "UsageHoursPerDay": 6.0,
    "EnergyConsumption": 5.0,
    "UserPreferences": 1,
    "MalfunctionIncidents": 0,
    "DeviceAgeMonths": 24,
}
#: form name -> (API call name, input fields)
FORMS: dict[str, tuple[str, list[str]]] = {
    "efficiency": ("predict_efficiency", DEVICE_FEATURES),
    "malfunction": ("predict_malfunction", MALFUNCTION_FEATURES),
    "segment": ("get_device_segment", DEVICE_FEATURES),
}


def _input(form: str, field: str) -> Any:
    """One input widget with the dataset's ranges (DESIGN §3); keyed so values survive reruns.

    Options are the dataset's own values in every language: a translated option label would
    make Streamlit reset the widget when the language changes.
    """
    key, label, default = f"{form}_{field}", tr(field), DEFAULTS[field]
    if field == "DeviceType":
        return st.selectbox(label, DEVICE_TYPES, index=DEVICE_TYPES.index(default), key=key)
    if field == "UserPreferences":
        return st.radio(
            label,
            [0, 1],
            index=default,
            key=key,
            horizontal=True,
        )
    if field == "UsageHoursPerDay":
        return st.number_input(label, 0.0, 24.0, default, 0.5, format="%.2f", key=key)
    if field == "EnergyConsumption":
        return st.number_input(label, 0.0, None, default, 0.1, format="%.2f", key=key)
    return st.number_input(label, 0, None, default, 1, key=key)


def _form(form: str) -> None:
    call, fields = FORMS[form]
    st.markdown(f"**{tr(form + '_intro')}**")
    with st.form(f"form_{form}"):
        left, right = st.columns(2)
        values = {}
        for i, field in enumerate(fields):
            with left if i % 2 == 0 else right:
                values[field] = _input(form, field)
        submitted = st.form_submit_button(tr(f"submit_{form}"), type="primary")
    if submitted:
        try:
            answer = getattr(client(), call)(values)
            st.session_state[f"result_{form}"] = {"input": values, "answer": answer}
        except ApiError as error:
            st.session_state[f"result_{form}"] = {"input": values, "error": error}
    result = st.session_state.get(f"result_{form}")
    if result is None:
        return
    if "error" in result:
        show_error(result["error"])
        return
    answer = result["answer"]
    SHOW[form](answer, result["input"])
    st.caption(tr("from_set", set=answer.model_set))


def _show_efficiency(answer: EfficiencyResult, _: dict[str, Any]) -> None:
    klass = answer.predicted_efficiency_class
    label = tr("efficient") if klass == 1 else tr("not_efficient")
    probability = fmt_pct(answer.probability_of_predicted_class)
    col1, col2 = st.columns(2)
    col1.metric(tr("result"), label)
    col2.metric(tr("probability"), probability)
    box = st.success if klass == 1 else st.warning
    box(tr("efficiency_summary", label=label, probability=probability))


def _show_malfunction(answer: MalfunctionResult, _: dict[str, Any]) -> None:
    st.metric(tr("malfunctions"), fmt_float(answer.predicted_malfunctions))
    if answer.note:  # the API's honest note when the model is no better than the mean
        st.info(answer.note)


def _show_segment(answer: SegmentResult, values: dict[str, Any]) -> None:
    sid = answer.device_segment_id
    st.metric(tr("segment_id"), str(sid))
    name = answer.segment_name_id if lang() == "id" else answer.segment_name
    if name:
        st.markdown(f"**{name}**")
    st.info(
        answer.description_id if lang() == "id" and answer.description_id else answer.description
    )
    segments, _ = load_segments()
    if segments is None or segments.model_set != answer.model_set:
        return  # profiles of another set (the API just swapped sets): not this answer's
    segment = segments.clusters.clusters[sid]
    profile = data.profile_frame(segment, segments.clusters.overall.means)
    if profile.empty:
        return
    st.markdown(f"**{tr('segment_vs_avg', id=sid)}**")
    st.altair_chart(charts.profile_chart(profile, lang()), width="stretch")
    table = pd.DataFrame(
        {
            tr("feature"): [tr(f) for f in profile["feature"]],
            tr("your_device"): [values.get(f) for f in profile["feature"]],
            tr("segment_mean"): profile["segment"].round(2),
            tr("overall_mean"): profile["overall"].round(2),
        }
    )
    st.dataframe(table, hide_index=True)


SHOW = {"efficiency": _show_efficiency, "malfunction": _show_malfunction, "segment": _show_segment}


def efficiency_form() -> None:
    _form("efficiency")


def malfunction_form() -> None:
    _form("malfunction")


def segment_form() -> None:
    _form("segment")

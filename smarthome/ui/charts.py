"""Altair chart builders: pure functions from the tables in ``data.py`` to charts."""

from __future__ import annotations

import altair as alt
import pandas as pd

from smarthome.ui.i18n import t

_LABELS = alt.Axis(labelLimit=260, labelOverlap=False)


def learning_curve(history: pd.DataFrame, metric: str, lang: str) -> alt.Chart | alt.LayerChart:
    """One metric of every model set against the rows it was trained on, with its baseline."""
    frame = history[history["metric"] == metric].dropna(subset=["rows"])
    model, baseline = t("model", lang), t("baseline", lang)
    long = pd.concat(
        [
            frame.assign(series=model, score=frame["value"]),
            frame.assign(series=baseline, score=frame["baseline"]),
        ]
    ).dropna(subset=["score"])
    x = alt.X("rows:Q", title=t("rows", lang), axis=alt.Axis(format=",d", tickMinStep=1))
    y = alt.Y(
        "score:Q",
        axis=alt.Axis(format=".3~f"),
        title=metric.upper() if metric == "rmse" else metric,
        scale=alt.Scale(zero=False),
    )
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=[model, baseline]),
        legend=alt.Legend(orient="bottom"),
    )
    dash = alt.StrokeDash(
        "series:N", scale=alt.Scale(domain=[model, baseline], range=[[1, 0], [5, 4]]), legend=None
    )
    tooltip = [
        alt.Tooltip("set:Q", title=t("set", lang)),
        alt.Tooltip("rows:Q", title=t("rows", lang)),
        alt.Tooltip("series:N", title=" "),
        alt.Tooltip("score:Q", format=".4f"),
    ]
    base = alt.Chart(long).encode(x=x, y=y, color=color, tooltip=tooltip)
    return (base.mark_line().encode(strokeDash=dash) + base.mark_point(filled=True)).properties(
        title=t(f"metric_{metric}", lang), height=260
    )


def profile_chart(profile: pd.DataFrame, lang: str) -> alt.Chart:
    """Bars of how far a segment's feature means are from the overall means, in percent."""
    frame = profile.assign(label=[t(f, lang).split(" (")[0] for f in profile["feature"]])
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("diff_pct:Q", title=t("diff_pct", lang)),
            y=alt.Y("label:N", title=None, sort=None, axis=_LABELS),
            color=alt.condition("datum.diff_pct >= 0", alt.value("#2a9d8f"), alt.value("#e76f51")),
            tooltip=[
                alt.Tooltip("label:N", title=t("feature", lang)),
                alt.Tooltip("segment:Q", title=t("segment_mean", lang), format=".2f"),
                alt.Tooltip("overall:Q", title=t("overall_mean", lang), format=".2f"),
                alt.Tooltip("diff_pct:Q", title=t("diff_pct", lang), format="+.1f"),
            ],
        )
        .properties(height=alt.Step(26))
    )


def device_mix_chart(mix: pd.DataFrame, lang: str) -> alt.Chart:
    """Bars of each device type's share of a segment."""
    frame = mix.rename(columns={"device": "label"})
    return (
        alt.Chart(frame)
        .mark_bar(color="#457b9d")
        .encode(
            x=alt.X(
                "share:Q",
                title=t("share", lang),
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y("label:N", title=None, sort=None, axis=_LABELS),
            tooltip=[
                alt.Tooltip("label:N", title=t("device", lang)),
                alt.Tooltip("share:Q", title=t("share", lang), format=".1%"),
            ],
        )
        .properties(title=t("device_mix", lang), height=alt.Step(26))
    )

"""Page-wide state shared by the sections: language, API client, error display."""

from __future__ import annotations

from typing import Any

import streamlit as st

from smarthome.config import env
from smarthome.ui.client import ApiClient, ApiError
from smarthome.ui.i18n import t


def lang() -> str:
    return st.session_state.get("lang", "en")


def api_url() -> str:
    return (st.session_state.get("api_url") or env("API_URL")).strip()


def client() -> ApiClient:
    return ApiClient(api_url())


def tr(key: str, **values: Any) -> str:
    """``t`` in the page's current language."""
    return t(key, lang(), **values)


def show_error(error: ApiError) -> None:
    """One clear message for a failed call, with the API's per-field details if any."""
    st.error(tr(f"err_{error.kind}", url=api_url(), message=error.message or error.kind))
    if error.details:
        st.markdown("\n".join(f"- `{d}`" for d in error.details[:20]))


def fmt_pct(value: float) -> str:
    return f"{value:.1%}"


def fmt_float(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"

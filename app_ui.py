"""Streamlit UI: prediction forms, model history, segments, bulk CSV, pipeline status, live.

The Live tab shows the stream scorer's newest predictions and alerts as they arrive.

Run with ``streamlit run app_ui.py`` (port 8501); it talks only to the API at ``API_URL``
(environment or the sidebar). ``python app_ui.py [--port N] [--api-url URL]`` starts the same
thing. The building blocks live in ``smarthome/ui/``.
"""

from __future__ import annotations

import argparse
import os
import sys

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from smarthome.cli import run
from smarthome.config import env, help_default


def page() -> None:
    """One run of the page (Streamlit reruns this on every interaction)."""
    from smarthome.ui import drift, forms, live, sections, status  # Streamlit-only
    from smarthome.ui.common import tr
    from smarthome.ui.i18n import LANGUAGES

    st.set_page_config(page_title="Smart-home ML", page_icon="🏠", layout="wide")
    st.session_state.setdefault("api_url", env("API_URL"))
    st.session_state.setdefault("lang", "en")
    with st.sidebar:
        st.radio(
            "Language / Bahasa",
            list(LANGUAGES),
            key="lang",
            horizontal=True,
            format_func=LANGUAGES.get,
        )
        st.text_input(tr("api_url"), key="api_url", help=tr("api_url_help"))
        sections.run_probe()
        sections.status_panel()
    st.title(tr("title"))
    st.caption(tr("subtitle"))
    sections.main_notice()
    names = ["efficiency", "malfunction", "segment", "bulk", "history", "segments", "drift"]
    # the Pipeline and Live tabs come first while a stream runs, last otherwise
    watch = ["pipeline", "live"]
    names = [*watch, *names] if status.stream_running() else [*names, *watch]
    tabs = dict(zip(names, st.tabs([tr(f"tab_{n}") for n in names]), strict=True))
    with tabs["pipeline"]:
        status.status_section()
    with tabs["live"]:
        live.live_section()
    with tabs["efficiency"]:
        forms.efficiency_form()
    with tabs["malfunction"]:
        forms.malfunction_form()
    with tabs["segment"]:
        forms.segment_form()
    with tabs["bulk"]:
        sections.bulk_section()
    with tabs["history"]:
        sections.history_section()
    with tabs["segments"]:
        sections.segments_section()
    with tabs["drift"]:
        drift.drift_section()


def main() -> int:
    """``python app_ui.py``: start ``streamlit run`` on this file with the given port/API."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument("--api-url", default=env("API_URL"), help=help_default("API_URL"))
    args = parser.parse_args()
    os.environ["API_URL"] = args.api_url
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        os.path.abspath(__file__),
        "--server.port",
        str(args.port),
        "--server.address",
        args.host,
    ]
    os.execv(sys.executable, command)
    return 0


if (
    get_script_run_ctx(suppress_warning=True) is not None
):  # run by Streamlit (streamlit run, or AppTest)
    page()
elif __name__ == "__main__":
    run(main, "app_ui.py")

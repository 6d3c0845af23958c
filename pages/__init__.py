"""Helpers shared by the pages (Streamlit's page discovery skips this file)."""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def route_through_app() -> None:
    """Hand a page over to app.py's router when a fresh server ran it on its own.

    With a folder named pages/ beside app.py, Streamlit 1.67 answers the first visit to a deep link
    (/surface?…) by running that page alone under an auto-discovered page list. This switches the
    server to the router and reruns once per session (AppTest resets the switch before every run,
    so a rerun every time would drop its widget events).
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get("routed"):
            st.session_state["routed"] = True
            st.rerun()

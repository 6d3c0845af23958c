"""AER Lab: the Streamlit entry point. It starts the local worker pool and routes to the pages in pages/.

Each page starts with `pages.route_through_app()`: a fresh Streamlit 1.67 server runs a deep-linked
page on its own, without this router, because a folder named pages/ sits beside this file.
"""

import gc
import threading

import streamlit as st

from engine import api

st.set_page_config(page_title="AER Lab", page_icon=".streamlit/favicon.png", layout="wide")  # local: no CDN


@st.cache_resource(show_spinner=False)
def worker_pool():
    """One local worker pool per server process, unless one is alive for this cache (AER_WORKERS=0: none)."""
    return api.ensure_workers()


def import_and_freeze() -> None:
    """Import torch and the registries, then move every object alive so far (modules, classes, the
    registries) out of the collector's reach: a full collection then walks what pages create, not the
    300,000 objects of the imports."""
    api.catalog()
    gc.freeze()


@st.cache_resource(show_spinner=False)
def warm_imports() -> threading.Thread:
    """Import torch and the registries in the background once per server, so no page waits for them."""
    thread = threading.Thread(target=import_and_freeze, name="warm-imports", daemon=True)
    thread.start()
    return thread


try:
    api.open_store()  # a damaged, unusable or too-new store is a message, not a traceback
except api.StoreError as exc:
    st.error(str(exc), icon=":material/database:")
    st.stop()
worker_pool()
warm_imports()
navigation = st.navigation(
    {
        "AER Lab": [
            st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
            st.Page("pages/papers.py", title="Papers", icon=":material/menu_book:", url_path="papers"),
        ],
        "Explore": [
            st.Page("pages/surface.py", title="Surface", icon=":material/landscape:", url_path="surface"),
            st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
            st.Page("pages/layers.py", title="Layers", icon=":material/layers:", url_path="layers"),
            st.Page("pages/budget.py", title="Budget", icon=":material/tune:", url_path="budget"),
            st.Page("pages/transfer.py", title="Transfer", icon=":material/swap_horiz:", url_path="transfer"),
            st.Page("pages/playground.py", title="Playground", icon=":material/science:", url_path="playground"),
        ],
        "Runs": [st.Page("pages/runs.py", title="Runs", icon=":material/queue:", url_path="runs")],
    }
)
navigation.run()

"""AER Lab: the Streamlit entry point. It only routes; each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="AER Lab", page_icon=":material/shield:", layout="wide")

navigation = st.navigation({
    "AER Lab": [st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True)],
    "Explore": [st.Page("pages/surface.py", title="Surface", icon=":material/landscape:", url_path="surface")],
})
navigation.run()

"""SAR Lab dashboard: page setup and navigation (each page is a short script in app_pages/).

Nothing here imports torch: the sidebar and each page's title are drawn before the heavy
modules load (the pages import them behind a spinner), so the first paint after a server start
is immediate.
"""

import streamlit as st

from ui.layout import inject_css

st.set_page_config(page_title="SAR Lab", page_icon=":material/memory:", layout="wide")
inject_css()

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/lesson.py", title="Lesson: flat vs sharp", icon=":material/school:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/landscape.py", title="Loss landscape", icon=":material/landscape:"),
    st.Page("app_pages/bit_flips.py", title="Bit flips (live)", icon=":material/bolt:"),
    st.Page("app_pages/bit_anatomy.py", title="Bit anatomy", icon=":material/grid_on:"),
    st.Page("app_pages/robustness.py", title="Robustness report", icon=":material/analytics:"),
    st.Page("app_pages/your_model.py", title="Your model", icon=":material/upload_file:"),
]

st.navigation(PAGES).run()

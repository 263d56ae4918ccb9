"""SAR Lab dashboard — landing page (placeholder until the dashboard work lands)."""

import streamlit as st

st.set_page_config(page_title="SAR Lab", layout="wide")
st.title("SAR Lab")

"""placeholder"""

import streamlit as st

st.title("bit_anatomy")

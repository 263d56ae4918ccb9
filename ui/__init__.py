"""Streamlit glue shared by the pages: cached loaders, the per-session model registry, cached
analyses and common widgets. sar_core stays free of streamlit; pages stay free of torch."""

"""Plotly figure builders (no streamlit). One colour and one name per method, everywhere."""

from sar_core.plots.style import METHOD_COLORS, METHOD_LABELS, method_color, method_label

__all__ = ["METHOD_COLORS", "METHOD_LABELS", "method_color", "method_label"]

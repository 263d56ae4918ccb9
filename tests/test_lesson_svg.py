"""The lesson's SVG accuracy chart: every point sits where the chart's own axes say its value is
(read back through the tick labels, as a reader would), with its number in a tooltip."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from sar_core.plots.svg import accuracy_svg

NS = "{http://www.w3.org/2000/svg}"


def curves():
    rng = np.random.default_rng(0)
    x = [0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1]
    out = []
    for m, drop in (("sgd", 0.8), ("sar", 0.3), ("clip", 0.1)):
        mean = [0.97 - drop * i / 6 + 0.01 * rng.standard_normal() for i in range(len(x))]
        out.append(
            {
                "label": m.upper(),
                "method": m,
                "x": x,
                "mean": mean,
                "lo": [v - 0.02 for v in mean],
                "hi": [v + 0.02 for v in mean],
            }
        )
    return out


def ticks(root):
    """(value, pixel) pairs of the y tick labels and of the x tick labels."""
    ys, xs = [], []
    for t in root.iter(f"{NS}text"):
        txt = (t.text or "").strip()
        if t.get("text-anchor") == "end" and re.fullmatch(r"\d+", txt):
            ys.append((float(txt), float(t.get("y")) - 4))
        elif t.get("font-size") == "10" and txt:
            xs.append((math.log10(float(txt)), float(t.get("x"))))
    return ys, xs


def test_points_sit_where_the_axes_say():
    cs = curves()
    root = ET.fromstring(accuracy_svg(cs, mark_x=0.03))
    ys, xs = ticks(root)
    (v0, p0), (v1, p1) = ys[0], ys[-1]
    (l0, q0), (l1, q1) = xs[0], xs[-1]
    circles = list(root.iter(f"{NS}circle"))
    assert len(circles) == sum(len(c["x"]) for c in cs)
    k = 0
    for c in cs:
        for x, m in zip(c["x"], c["mean"]):
            cx, cy = float(circles[k].get("cx")), float(circles[k].get("cy"))
            pct = v0 + (cy - p0) / (p1 - p0) * (v1 - v0)  # read off the y axis
            lx = l0 + (cx - q0) / (q1 - q0) * (l1 - l0)  # read off the x axis (log)
            assert pct == pytest.approx(100 * m, abs=0.1)
            assert lx == pytest.approx(math.log10(x), abs=0.01)
            tip = circles[k].find(f"{NS}title").text
            assert f"{100 * m:.1f}%" in tip and c["label"] in tip
            k += 1


def test_y_axis_spans_every_band_and_stays_in_0_100():
    cs = curves()
    root = ET.fromstring(accuracy_svg(cs))
    ys, _ = ticks(root)
    vals = [v for v, _ in ys]
    lo = min(100 * v for c in cs for v in c["lo"])
    hi = max(100 * v for c in cs for v in c["hi"])
    assert 0 <= min(vals) <= lo and hi <= max(vals) <= 100


def test_two_models_of_one_method_are_told_apart_and_dashes_kept():
    cs = curves()[:1] * 2
    cs = [cs[0], {**cs[1], "label": "mine", "dash": "dash"}]
    root = ET.fromstring(accuracy_svg(cs))
    lines = list(root.iter(f"{NS}polyline"))
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert lines[1].get("stroke-dasharray") and not lines[0].get("stroke-dasharray")


def test_labels_are_escaped_and_bad_levels_refused():
    cs = curves()[:1]
    cs[0]["label"] = "<b>&"
    ET.fromstring(accuracy_svg(cs))  # parses: the label was escaped
    with pytest.raises(ValueError, match="levels"):
        accuracy_svg([{**cs[0], "x": [0.0] * 7}])

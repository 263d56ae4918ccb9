"""Review of the Loss landscape page (headless browser walk): every 3D surface in one box shape
and one z range, the fault slice honours "Log-scale loss", and a narrow log range gets ticks."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from sar_core.plots.landscape import fault_slice_figure, slice_1d_figure
from sar_core.plots.landscape_2d import SCENE_ASPECT, surface_figure, surfaces_figure
from sar_core.plots.landscape_axes import decades

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _grid(scale: float, method: str) -> dict:
    a = [-1.0 + 0.25 * i for i in range(9)]
    loss = [[0.2 + scale * (x * x + y * y) for x in a] for y in a]
    return {"alphas": a, "betas": a, "loss": loss, "method": method}


def _scenes(fig) -> list:
    return [fig.layout[k] for k in fig.layout if k.startswith("scene")]


def test_every_surface_has_one_fixed_aspect_and_one_z_range():
    """SGD's surface (the flattest data, on a log scale) was drawn x = y = 1.51, z = 0.44."""
    grids = [_grid(0.05, "sgd"), _grid(2.0, "sam"), _grid(3.0, "sar")]
    for log in (False, True):
        scenes = _scenes(surfaces_figure(grids, log_z=log))
        assert len(scenes) >= 3  # a 2 x 2 grid: the fourth scene is empty
        for s in scenes:
            assert s.aspectmode == "manual"
            assert (s.aspectratio.x, s.aspectratio.y, s.aspectratio.z) == tuple(
                SCENE_ASPECT.values()
            )
            assert tuple(s.zaxis.range) == tuple(scenes[0].zaxis.range)
            assert s.zaxis.nticks == scenes[0].zaxis.nticks
    one = _scenes(surface_figure(grids[0], 0.0, 1.0))[0]
    assert one.aspectmode == "manual"


def _fault(loss):
    n = len(loss)
    return {"alphas": [3 * i / (n - 1) - 1.5 for i in range(n)], "loss": loss,
            "fault_loss": loss[-1], "method": "sgd", "n_flips": 3, "nonfinite": False}  # fmt: skip


def test_the_fault_slice_is_linear_when_log_is_off():
    fig = fault_slice_figure([_fault([1.32, 1.5, 1.8, 2.06])], log_y=False)
    assert fig.layout.yaxis.type in (None, "linear") and fig.layout.yaxis.tickvals is None


def test_a_narrow_log_range_shows_several_ticks():
    """1.32-2.06 on a log axis showed one label, '2'."""
    loss = [1.32, 1.5, 1.8, 2.06]
    for fig in (
        fault_slice_figure([_fault(loss)], log_y=True),
        slice_1d_figure([{"alphas": [0, 1, 2, 3], "loss": loss, "method": "sgd"}], log_y=True),
    ):
        ticks = [t for t in fig.layout.yaxis.tickvals if 1.32 <= t <= 2.06]
        assert fig.layout.yaxis.type == "log" and len(ticks) >= 3


def test_decades_measures_the_finite_positive_span():
    assert decades([0.1, 1.0, 1e37, math.inf, None, -1.0]) == pytest.approx(38.0)
    assert decades([1.32, 2.06]) < 1 and decades([math.inf]) == 0.0


def _spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def test_the_landscape_page_honours_the_log_toggle_everywhere():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app_pages" / "landscape.py"), default_timeout=180).run()
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    at.slider(key="steps1").set_value(5)
    at.slider(key="steps2").set_value(5)
    at.button(key="compute").click().run()
    assert not at.exception

    def yaxis_types() -> list:
        out = []
        for c in at.get("plotly_chart"):
            lay = _spec(c)["layout"]
            if "fault direction" in json.dumps(lay.get("title", "")) or "1D" in json.dumps(
                lay.get("title", "")
            ):
                out.append(lay.get("yaxis", {}).get("type", "linear"))
        return out

    assert yaxis_types() == ["linear", "linear"]  # 1D slice and fault slice, toggle off
    at.toggle(key="log").set_value(True).run()
    assert not at.exception
    assert yaxis_types() == ["log", "log"]
    at.segmented_control(key="view").set_value("surface").run()
    scenes = [
        v for c in at.get("plotly_chart") for k, v in _spec(c)["layout"].items() if "scene" in k
    ]
    assert len(scenes) >= 2
    assert all(s["aspectmode"] == "manual" and s["aspectratio"] == SCENE_ASPECT for s in scenes)

"""bit_cells_figure: one cell per stored bit, filled where the bit is 1, flipped bits outlined."""

from __future__ import annotations

import numpy as np

from sar_core.plots.bits import LAYOUT, bit_cells_figure


def test_cells_follow_the_numpy_bits_and_the_flipped_positions():
    f32 = format(int(np.float32(0.1).view(np.uint32)), "032b")  # MSB first
    i8 = format(int(np.int8(-25).view(np.uint8)), "08b")
    fig = bit_cells_figure([("0.1", f32, "float32"), ("q", i8, "int8")], flipped=(0, 7))
    cells = fig.layout.shapes
    assert len(cells) == 32 + 8
    # x of a cell's left edge (minus the gap) is its column; right-aligned: bit 0 at column 31
    for cell, (row, bits) in zip(cells, [(0, f32)] * 32 + [(1, i8)] * 8):
        col = int(round(cell.x0 - LAYOUT.cell_gap))
        pos = 31 - col
        assert cell.y0 == -row * LAYOUT.row_pitch
        assert (cell.line.width == LAYOUT.flipped_outline) == (pos in (0, 7))
        assert bits[len(bits) - 1 - pos] in "01"
        filled = "rgba" not in str(cell.fillcolor)
        assert filled == (bits[len(bits) - 1 - pos] == "1")
    ones = next(t for t in fig.data if t.mode == "text" and t.text and "1" in t.text[0])
    assert len(ones.x) == f32.count("1") + i8.count("1")
    assert [t.name for t in fig.data if t.name][-1] == "flipped"
    assert fig.layout.height == LAYOUT.height_base + 2 * LAYOUT.height_row

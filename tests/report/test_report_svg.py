"""The SVG charts: axes that cover the data, decimation that keeps spikes, escaped text, well-formed XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.report.svg import (BarGroup, BoxRow, Dot, Line, Marker, category_bars, decimate, line_chart, nice_ticks,
                                  quantile_rows, time_ticks)

finite = st.floats(-1e9, 1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(finite, finite)
def test_nice_ticks_cover_the_range_evenly(a, b):
    lo, hi = min(a, b), max(a, b)
    ticks = nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 12
    steps = [y - x for x, y in zip(ticks, ticks[1:])]
    assert ticks[0] <= lo + 1e-6 * steps[0] and ticks[-1] >= hi - 1e-6 * steps[0]
    assert max(steps) - min(steps) <= 1e-6 * max(abs(ticks[0]), abs(ticks[-1]), steps[0])


@pytest.mark.parametrize("lo, hi", [(0.0, 5e-324), (5e-324, 1e-323), (1.0, 1.0 + 2.2e-16), (-1e-300, 1e-300)])
def test_nice_ticks_of_a_range_too_small_to_divide(lo, hi):
    ticks = nice_ticks(lo, hi)  # found by hypothesis: (0, 5e-324) raised "math domain error"
    assert len(ticks) >= 2 and ticks[0] <= lo and ticks[-1] >= hi and ticks[0] < ticks[-1]


@settings(max_examples=100, deadline=None)
@given(st.integers(1_500_000_000_000, 1_900_000_000_000), st.integers(10, 90 * 86_400_000))
def test_time_ticks_lie_in_the_range_with_distinct_labels(start, span):
    ticks = time_ticks(start, start + span)
    assert ticks and all(start <= t <= start + span for t, _ in ticks)
    assert len({label for _, label in ticks}) == len(ticks)
    assert [t for t, _ in ticks] == sorted(t for t, _ in ticks)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(-1e3, 1e3)), min_size=1, max_size=3000), st.integers(4, 400))
def test_decimate_bounds_the_points_and_keeps_the_extremes(points, limit):
    out = decimate(points, limit)
    assert len(out) <= max(limit, 2) or len(out) == len(points)
    assert max(y for _, y in out) == max(y for _, y in points)
    assert min(y for _, y in out) == min(y for _, y in points)
    assert set(out) <= set(points)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def coords(svg: str) -> list[tuple[float, float]]:
    (line,) = re.findall(r'<polyline points="([^"]+)"', svg)
    return [tuple(map(float, p.split(","))) for p in line.split()]


def test_line_chart_maps_time_left_to_right_and_values_bottom_to_top():
    svg = line_chart([Line([(0.0, 0.0), (60_000.0, 2.0), (120_000.0, 1.0)], "#123456", "psi")],
                     x_range=(0.0, 120_000.0), time_axis=True)
    parse(svg)
    (x0, y0), (x1, y1), (x2, y2) = coords(svg)
    assert x0 < x1 < x2 and y1 < y2 < y0  # SVG y grows downwards
    assert ">00:01:00<" in svg  # a tick at one minute


def test_markers_dots_and_hostile_text_are_escaped():
    evil = '<script>alert("x")</script> & "quotes"'
    svg = line_chart([Line([(0.0, 1.0), (10.0, 3.0)], "#000", evil)], x_range=(0.0, 10.0), time_axis=False,
                     dots=[Dot(10.0, 3.0, "#f00", evil)],
                     markers=[Marker(5.0, "#f80", evil), Marker(7.0, "#080", evil, resolved=True)], y_label=evil)
    root = parse(svg)
    assert "<script" not in svg
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert titles.count(evil) == 4
    assert svg.count("<path") == 1 and svg.count('r="4.5"') == 1  # one firing triangle, one resolved circle


def test_empty_chart_says_why():
    svg = line_chart([Line([], "#000", "psi")], x_range=(0.0, 1.0), time_axis=True, empty_message="no values yet")
    parse(svg)
    assert "no values yet" in svg and "<polyline" not in svg


def test_quantile_rows_put_the_shifted_distribution_to_the_left():
    keys = ("p01", "p05", "p25", "p50", "p75", "p95", "p99")
    ref = BoxRow("reference", dict(zip(keys, [10.0, 20, 30, 40, 50, 60, 70])), "#00f", 40.0)
    cur = BoxRow("current", dict(zip(keys, [0.0, 5, 10, 20, 30, 40, 50])), "#f80", 20.0)
    svg = quantile_rows([ref, cur])
    parse(svg)
    boxes = [float(x) for x in re.findall(r'<rect x="([\d.]+)"[^>]*height="24"', svg)]
    assert len(boxes) == 2 and boxes[1] < boxes[0]


def test_category_bars_are_proportional_and_names_escaped():
    groups = [BarGroup("reference", {"a": 0.5, "<b>": 0.25}, "#00f"), BarGroup("current", {"a": 0.25, "<b>": 0.5}, "#f80")]
    svg = category_bars(["a", "<b>"], groups)
    parse(svg)
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(widths) == 4
    assert widths[0] == widths[3] and widths[1] == widths[2] and abs(widths[0] - 2 * widths[1]) <= 0.2
    assert "&lt;b&gt;" in svg and "<b>" not in svg

"""Inline SVG charts for the HTML report: numbers in, SVG text out.

The report must open anywhere, offline, so there is no JavaScript and no
charting library: each chart is a small SVG document written here, with native
``<title>`` tooltips for exact values.  Three kinds of chart:

* :func:`line_chart`: values per window over event time (one line per input
  partition), a threshold line, highlighted points and alert markers;
* :func:`quantile_rows`: numeric distributions as rows of quantile boxes on one
  axis (reference above, current below);
* :func:`category_bars`: categorical distributions as grouped horizontal bars.

Every piece of text is escaped; feature names can be anything.

>>> svg = line_chart([Line([(0.0, 0.1), (1000.0, 0.4)], "#4c78a8", "psi")], x_range=(0.0, 1000.0), time_axis=True)
>>> svg.startswith("<svg") and svg.count("<polyline") == 1
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Sequence

__all__ = [
    "Line", "Dot", "Marker", "BoxRow", "BarGroup", "line_chart", "quantile_rows", "category_bars",
    "nice_ticks", "time_ticks", "tick_label", "decimate", "thin_dots",
]

WIDTH = 540
HEIGHT = 200
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
GRID = "#e6e6e6"
AXIS = "#9a9a9a"
TEXT = "#555"
#: Most points drawn per line; longer lines keep each bucket's minimum and maximum.
MAX_POINTS = 600


@dataclass(frozen=True, slots=True)
class Line:
    """A polyline through ``(x, y)`` points (x: epoch ms or an offset)."""

    points: Sequence[tuple[float, float]]
    colour: str
    label: str
    dashed: bool = False
    #: draw as steps (a value holds until the next point), e.g. a per-window threshold
    step: bool = False
    width: float = 1.8


@dataclass(frozen=True, slots=True)
class Dot:
    """A highlighted point, e.g. a window over its threshold, with a tooltip."""

    x: float
    y: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Marker:
    """An alert at ``x``: a vertical rule with a triangle (firing) or a circle (resolved) on top."""

    x: float
    colour: str
    title: str
    resolved: bool = False


@dataclass(frozen=True, slots=True)
class BoxRow:
    """One distribution drawn from its quantiles (keys ``p01`` ... ``p99``) and mean."""

    label: str
    quantiles: dict[str, float]
    colour: str
    mean: float | None = None


@dataclass(frozen=True, slots=True)
class BarGroup:
    """Shares per category (0..1) of one distribution."""

    label: str
    shares: dict[str, float]
    colour: str
    counts: dict[str, float] = field(default_factory=dict)


def _f(v: float) -> str:
    """Coordinates with one decimal: short and precise enough."""
    return f"{v:.1f}"


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering ``[lo, hi]``.

    >>> nice_ticks(0.0, 0.93)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(3.0, 3.0)
    [2.6, 2.8, 3.0, 3.2, 3.4]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi)) or hi - lo < 1e-280:  # equal, or a span too small to divide
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [float(f"{i * step:.12g}") for i in range(first, last + 1)]


def _decimals(step: float) -> int:
    """Decimals that write ``step`` exactly: 0.25 -> 2, 0.2 -> 1, 5 -> 0."""
    for d in range(0, 12):
        if abs(round(step, d) - step) <= abs(step) * 1e-6:
            return d
    return 12


def tick_label(value: float, step: float) -> str:
    """A tick's text: as many decimals as the step needs; thousands as ``k``, millions as ``M`` when the step is that big.

    >>> tick_label(40000.0, 20000.0), tick_label(0.25, 0.05), tick_label(2_500_000.0, 500_000.0), tick_label(0.5, 0.25)
    ('40k', '0.25', '2.5M', '0.50')
    """
    if step <= 0 or abs(value) < step * 1e-9:
        return "0"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if step >= scale or (scale > 1e3 and step >= scale / 10):
            return f"{value / scale:.{_decimals(step / scale)}f}{suffix}"
    return f"{value:.{_decimals(step)}f}"


_SECOND = 1000.0
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_TIME_STEPS = (
    [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    + [s * _SECOND for s in (1, 2, 5, 10, 15, 30)]
    + [m * _MINUTE for m in (1, 2, 5, 10, 15, 30)]
    + [h * _HOUR for h in (1, 2, 3, 6, 12)]
    + [d * _DAY for d in (1, 2, 7, 14, 28, 56, 112, 364)]
)


def time_ticks(lo_ms: float, hi_ms: float, target: int = 6) -> list[tuple[float, str]]:
    """Ticks at round UTC times in ``[lo_ms, hi_ms]``, with labels as short as the span allows.

    >>> [label for _, label in time_ticks(1_764_000_000_000, 1_764_000_600_000)]
    ['16:00', '16:02', '16:04', '16:06', '16:08', '16:10']
    """
    span = max(hi_ms - lo_ms, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= target), _TIME_STEPS[-1])
    first = math.ceil(lo_ms / step) * step
    ticks = []
    t = first
    while t <= hi_ms + 1e-6 and len(ticks) <= 3 * target:
        ticks.append(t)
        t += step
    if step < _SECOND:
        fmt = "%H:%M:%S.%f"
    elif step < _MINUTE:
        fmt = "%H:%M:%S"
    elif step < _DAY and span < _DAY:
        fmt = "%H:%M"
    elif step < _DAY:
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%Y-%m-%d"
    out = []
    for t in ticks:
        text = datetime.fromtimestamp(t / 1000.0, tz=timezone.utc).strftime(fmt)
        out.append((t, text[:-3] if fmt.endswith("%f") else text))
    return out


def decimate(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most about ``limit`` points: each of ``limit / 2`` buckets of x keeps its lowest and highest point.

    Spikes survive (a window far over its threshold is never averaged away).

    >>> len(decimate([(float(i), float(i % 7)) for i in range(10_000)], 100)) <= 100
    True
    """
    pts = sorted(points)
    if len(pts) <= limit:
        return pts
    buckets = max(limit // 2, 1)
    lo, hi = pts[0][0], pts[-1][0]
    width = (hi - lo) / buckets or 1.0
    out: list[tuple[float, float]] = []
    current: list[tuple[float, float]] = []
    index = 0
    for p in pts:
        b = min(int((p[0] - lo) / width), buckets - 1)
        if b != index and current:
            out.extend(_extremes(current))
            current = []
        index = b
        current.append(p)
    if current:
        out.extend(_extremes(current))
    return out


def thin_dots(dots: Sequence[Dot], limit: int = MAX_POINTS // 2) -> list[Dot]:
    """At most ``limit`` dots: in each of ``limit`` buckets of x, the highest.

    >>> len(thin_dots([Dot(float(i), float(i % 5), "#000", "") for i in range(5000)], 100)) <= 100
    True
    """
    if len(dots) <= limit:
        return list(dots)
    lo = min(d.x for d in dots)
    width = (max(d.x for d in dots) - lo) / limit or 1.0
    best: dict[int, Dot] = {}
    for d in dots:
        b = min(int((d.x - lo) / width), limit - 1)
        if b not in best or d.y > best[b].y:
            best[b] = d
    return [best[b] for b in sorted(best)]


def _extremes(bucket: list[tuple[float, float]]) -> list[tuple[float, float]]:
    low = min(bucket, key=lambda p: p[1])
    high = max(bucket, key=lambda p: p[1])
    return sorted({low, high})


def _open_svg(width: int, height: int, label: str) -> list[str]:
    return [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(label)}" '
            f'style="{FONT};display:block;max-width:{width}px" preserveAspectRatio="xMinYMin meet">']


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, colour: str = TEXT,
          weight: str = "normal", title: str | None = None) -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    return (f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" fill="{colour}" text-anchor="{anchor}"'
            f'{" font-weight=" + chr(34) + weight + chr(34) if weight != "normal" else ""}>{tip}{escape(text)}</text>')


def _empty(width: int, height: int, label: str, message: str) -> str:
    parts = _open_svg(width, height, label)
    parts.append(f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#fafafa" stroke="{GRID}"/>')
    parts.append(_text(width / 2, height / 2 + 4, message, anchor="middle", colour="#888"))
    parts.append("</svg>")
    return "".join(parts)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line_chart(lines: Sequence[Line], *, x_range: tuple[float, float], time_axis: bool, dots: Sequence[Dot] = (),
               markers: Sequence[Marker] = (), y_label: str = "", y_floor: float | None = 0.0,
               y_ceiling: float | None = None, y_percent: bool = False, width: int = WIDTH, height: int = HEIGHT,
               empty_message: str = "no values") -> str:
    """Values over time (or offsets), with an optional threshold line, dots and alert markers.

    The y axis spans the values and ``y_floor`` (None: just the values);
    ``y_ceiling`` caps it (e.g. 1 for a ratio); ``y_percent`` labels it in %.
    """
    label = y_label or "chart"
    values = [y for line in lines for _, y in line.points if math.isfinite(y)] + [d.y for d in dots if math.isfinite(d.y)]
    if not values:
        return _empty(width, height, label, empty_message)
    left, right, top, bottom = 50.0, 14.0, 16.0, 24.0
    plot_w, plot_h = width - left - right, height - top - bottom
    y_lo = min(values) if y_floor is None else min(y_floor, min(values))
    y_hi = max(values) if y_floor is None else max(y_floor, max(values))
    if y_ceiling is not None:
        y_hi = min(y_hi, y_ceiling) if y_hi > y_lo else y_ceiling
    ticks = nice_ticks(y_lo, y_hi if y_hi > y_lo else y_lo + (abs(y_lo) * 0.1 or 0.1), 4)
    y0, y1 = ticks[0], ticks[-1]
    x0, x1 = x_range
    if x1 <= x0:
        x0, x1 = x0 - 1.0, x0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        y = min(max(y, y0), y1)
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = _open_svg(width, height, label)
    parts.append(f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(plot_w)}" height="{_f(plot_h)}" fill="#fff"/>')
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for t in ticks:
        y = sy(t)
        parts.append(f'<line x1="{_f(left)}" x2="{_f(left + plot_w)}" y1="{_f(y)}" y2="{_f(y)}" stroke="{GRID}"/>')
        text = f"{t * 100:.{_decimals(step * 100)}f}%" if y_percent else tick_label(t, step)
        parts.append(_text(left - 6, y + 4, text, anchor="end"))
    if time_axis:
        xticks = time_ticks(x0, x1, max(2, int(plot_w // 80)))
    else:
        raw = nice_ticks(x0, x1, max(2, int(plot_w // 80)))
        xstep = raw[1] - raw[0] if len(raw) > 1 else 1.0
        xticks = [(t, tick_label(t, xstep)) for t in raw if x0 <= t <= x1]
    for t, text in xticks:
        x = sx(t)
        parts.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(top)}" y2="{_f(top + plot_h)}" stroke="{GRID}"/>')
        parts.append(_text(x, height - 7, text, anchor="middle"))
    parts.append(f'<line x1="{_f(left)}" x2="{_f(left + plot_w)}" y1="{_f(top + plot_h)}" y2="{_f(top + plot_h)}" '
                 f'stroke="{AXIS}"/>')
    for m in markers:
        x = sx(min(max(m.x, x0), x1))
        parts.append(f'<g class="alert"><title>{escape(m.title)}</title>'
                     f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(top)}" y2="{_f(top + plot_h)}" stroke="{m.colour}" '
                     f'stroke-width="1.2" stroke-dasharray="3 2" opacity="0.8"/>')
        if m.resolved:
            parts.append(f'<circle cx="{_f(x)}" cy="{_f(top - 7)}" r="4.5" fill="#fff" stroke="{m.colour}" stroke-width="2"/>')
        else:
            parts.append(f'<path d="M{_f(x - 5.5)} {_f(top - 12)}H{_f(x + 5.5)}L{_f(x)} {_f(top - 2)}Z" fill="{m.colour}"/>')
        parts.append("</g>")
    for line in lines:
        pts = [(x, y) for x, y in decimate(line.points) if math.isfinite(y)]
        if not pts:
            continue
        if line.step:
            coords = []
            for i, (x, y) in enumerate(pts):
                if i:
                    coords.append(f"{_f(sx(x))},{_f(sy(pts[i - 1][1]))}")
                coords.append(f"{_f(sx(x))},{_f(sy(y))}")
        else:
            coords = [f"{_f(sx(x))},{_f(sy(y))}" for x, y in pts]
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        if len(coords) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{_f(sx(x))}" cy="{_f(sy(y))}" r="2.5" fill="{line.colour}"><title>{escape(line.label)}</title></circle>')
            continue
        parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{line.colour}" '
                     f'stroke-width="{line.width}"{dash} stroke-linejoin="round"><title>{escape(line.label)}</title></polyline>')
    for d in thin_dots(dots):
        if math.isfinite(d.y):
            parts.append(f'<circle cx="{_f(sx(d.x))}" cy="{_f(sy(d.y))}" r="3.2" fill="{d.colour}" stroke="#fff" '
                         f'stroke-width="0.8"><title>{escape(d.title)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


_BOX_KEYS = ("p01", "p05", "p25", "p50", "p75", "p95", "p99")


def quantile_rows(rows: Sequence[BoxRow], *, width: int = WIDTH, row_height: int = 46, label_width: int = 80,
                  empty_message: str = "no values") -> str:
    """Distributions as rows of nested boxes on one axis: whiskers p01–p99, p05–p95, box p25–p75, median, mean.

    >>> svg = quantile_rows([BoxRow("reference", dict(zip(_BOX_KEYS, range(7))), "#4c78a8", 3.0)])
    >>> svg.count("<rect") >= 2
    True
    """
    usable = [r for r in rows if r.quantiles and all(k in r.quantiles and math.isfinite(r.quantiles[k]) for k in _BOX_KEYS)]
    height = 24 + row_height * max(len(rows), 1)
    if not usable:
        return _empty(width, height, "distribution", empty_message)
    lo = min(r.quantiles["p01"] for r in usable)
    hi = max(r.quantiles["p99"] for r in usable)
    ticks = nice_ticks(lo, hi, 5)
    x0, x1 = ticks[0], ticks[-1]
    left, right = float(label_width), 14.0
    plot_w = width - left - right
    bottom = height - 24

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    parts = _open_svg(width, height, "distribution: quantiles")
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for t in ticks:
        x = sx(t)
        parts.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="4" y2="{_f(bottom)}" stroke="{GRID}"/>')
        parts.append(_text(x, height - 7, tick_label(t, step), anchor="middle"))
    parts.append(f'<line x1="{_f(left)}" x2="{_f(left + plot_w)}" y1="{_f(bottom)}" y2="{_f(bottom)}" stroke="{AXIS}"/>')
    for i, row in enumerate(rows):
        cy = 4 + row_height * i + row_height / 2
        parts.append(_text(left - 8, cy + 4, _shorten(row.label, 12), anchor="end", colour=row.colour, weight="600",
                           title=row.label))
        if row not in usable:
            parts.append(_text(left + 4, cy + 4, "no values", colour="#888"))
            continue
        q = row.quantiles
        tip = (f"{row.label}: p01 {q['p01']:.4g}, p05 {q['p05']:.4g}, p25 {q['p25']:.4g}, median {q['p50']:.4g}, "
               f"p75 {q['p75']:.4g}, p95 {q['p95']:.4g}, p99 {q['p99']:.4g}"
               + (f", mean {row.mean:.4g}" if row.mean is not None and math.isfinite(row.mean) else ""))
        parts.append(f"<g><title>{escape(tip)}</title>")
        parts.append(f'<line x1="{_f(sx(q["p01"]))}" x2="{_f(sx(q["p99"]))}" y1="{_f(cy)}" y2="{_f(cy)}" '
                     f'stroke="{row.colour}" stroke-width="1.5"/>')
        for k in ("p01", "p99"):
            parts.append(f'<line x1="{_f(sx(q[k]))}" x2="{_f(sx(q[k]))}" y1="{_f(cy - 5)}" y2="{_f(cy + 5)}" '
                         f'stroke="{row.colour}" stroke-width="1.5"/>')
        parts.append(f'<rect x="{_f(sx(q["p05"]))}" y="{_f(cy - 7)}" width="{_f(max(sx(q["p95"]) - sx(q["p05"]), 1))}" '
                     f'height="14" fill="{row.colour}" fill-opacity="0.25"/>')
        parts.append(f'<rect x="{_f(sx(q["p25"]))}" y="{_f(cy - 12)}" width="{_f(max(sx(q["p75"]) - sx(q["p25"]), 1))}" '
                     f'height="24" fill="{row.colour}" fill-opacity="0.6" stroke="{row.colour}"/>')
        parts.append(f'<line x1="{_f(sx(q["p50"]))}" x2="{_f(sx(q["p50"]))}" y1="{_f(cy - 14)}" y2="{_f(cy + 14)}" '
                     f'stroke="#222" stroke-width="2.2"/>')
        if row.mean is not None and math.isfinite(row.mean) and x0 <= row.mean <= x1:
            m = sx(row.mean)
            parts.append(f'<path d="M{_f(m)} {_f(cy - 5)}L{_f(m + 5)} {_f(cy)}L{_f(m)} {_f(cy + 5)}L{_f(m - 5)} {_f(cy)}Z" '
                         f'fill="#fff" stroke="#222" stroke-width="1.2"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def category_bars(categories: Sequence[str], groups: Sequence[BarGroup], *, width: int = WIDTH, bar: int = 11,
                  label_width: int = 118, empty_message: str = "no values") -> str:
    """Shares of each category, one bar per group (reference, current), with the share printed at the bar's end."""
    if not categories or not groups:
        return _empty(width, 60, "categories", empty_message)
    gap = 8
    band = bar * len(groups) + gap
    height = int(20 + band * len(categories))
    top_share = max((g.shares.get(c, 0.0) for g in groups for c in categories), default=0.0)
    ticks = nice_ticks(0.0, max(top_share, 0.05), 4)
    x1 = ticks[-1]
    left, right = float(label_width), 40.0
    plot_w = width - left - right
    bottom = height - 18

    def sx(x: float) -> float:
        return left + x / x1 * plot_w

    parts = _open_svg(width, height, "distribution: category shares")
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.1
    for t in ticks:
        x = sx(t)
        parts.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="2" y2="{_f(bottom)}" stroke="{GRID}"/>')
        parts.append(_text(x, height - 5, f"{t * 100:.{_decimals(step * 100)}f}%",
                           anchor="middle"))
    for i, name in enumerate(categories):
        y = 4 + band * i
        parts.append(_text(left - 8, y + band / 2, _shorten(name, 18), anchor="end", colour="#333", title=name))
        for j, g in enumerate(groups):
            share = g.shares.get(name, 0.0)
            by = y + j * bar
            count = g.counts.get(name)
            tip = f"{g.label}: {name} {share:.1%}" + (f" ({count:,.0f})" if count is not None else "")
            parts.append(f'<rect x="{_f(left)}" y="{_f(by)}" width="{_f(max(sx(share) - left, 0.5))}" height="{bar - 1}" '
                         f'fill="{g.colour}"><title>{escape(tip)}</title></rect>')
            parts.append(_text(sx(share) + 4, by + bar - 2, f"{share:.0%}" if share >= 0.01 or share == 0 else "<1%",
                               size=10))
    parts.append(f'<line x1="{_f(left)}" x2="{_f(left)}" y1="2" y2="{_f(bottom)}" stroke="{AXIS}"/>')
    parts.append("</svg>")
    return "".join(parts)

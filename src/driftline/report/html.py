"""The report page: :class:`~driftline.report.data.ReportData` in, one self-contained HTML string out.

No JavaScript, no external style sheet, font or image: the CSS is inline and
the charts are inline SVG (:mod:`driftline.report.svg`), so the file can be
mailed, attached to a ticket or opened offline.  Every string that comes from
the data (model, feature and category names, alert summaries, file names) is
HTML-escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from driftline.reference.profile import CATEGORICAL, NUMERIC
from driftline.report.data import (MISSING_DETECTORS, STAT_NAMES, FeatureData, Point, QualityData, ReportData, VersionData,
                                   WindowTests, record_x)
from driftline.report.svg import BarGroup, BoxRow, Dot, Line, Marker, category_bars, line_chart, quantile_rows

__all__ = ["render", "MAX_ALERT_ROWS", "MAX_CATEGORIES", "MAX_MOVED_ROWS"]

#: Rows of the alerts table per model version (the newest are kept).
MAX_ALERT_ROWS = 1000
#: Rows of the "moved first" table (every feature has its card below it).
MAX_MOVED_ROWS = 20
#: Categories drawn per categorical feature; the rest are added up as "other".
MAX_CATEGORIES = 12

REFERENCE_COLOUR = "#4c78a8"
CURRENT_COLOUR = "#f58518"
THRESHOLD_COLOUR = "#d62728"
OVER_COLOUR = "#d62728"
SERIES_COLOURS = ("#4c78a8", "#72b7b2", "#54a24b", "#b279a2", "#9d755d", "#eeca3b", "#ff9da6", "#bab0ac")
ALERT_COLOURS = {"critical": "#b71c1c", "warning": "#ef8a17"}
RESOLVED_COLOUR = "#2e7d32"

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2328;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:24px;margin:4px 0 2px}h2{font-size:20px;margin:36px 0 8px;padding-top:8px;border-top:2px solid #d0d4da}
h3{font-size:16px;margin:24px 0 8px}h4{font-size:16px;margin:0 0 4px;overflow-wrap:anywhere}
.sub{color:#666;margin:0 0 12px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px;margin:12px 0}
.fact{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 10px}
.fact b{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:#6a737d;font-weight:600}
.fact span{font-size:15px;word-break:break-word}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e6;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #eceff2;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;font-size:12px;color:#444}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.time{white-space:nowrap}
td.signal{min-width:22em}
td.name{overflow-wrap:anywhere;min-width:9em;max-width:260px}
tr.moved td:first-child{border-left:3px solid #d62728}
.feature{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 16px;margin:16px 0}
.meta{color:#555;margin:0 0 8px;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:12px 20px}
figure{margin:0}figcaption{font-weight:600;font-size:13px;margin:0 0 2px;color:#333}
.note{color:#666;font-size:12px;margin:2px 0 0}
.legend{font-size:12px;color:#555;margin:2px 0 0}
.legend span{margin-right:12px;white-space:nowrap}
.sw{display:inline-block;width:14px;height:0;border-top:3px solid;vertical-align:middle;margin-right:4px}
.sw.dash{border-top-style:dashed}.dot{display:inline-block;width:9px;height:9px;border-radius:50%;vertical-align:middle;margin-right:4px}
.tri{display:inline-block;width:0;height:0;border-left:5px solid transparent;border-right:5px solid transparent;border-top:9px solid;vertical-align:middle;margin-right:4px}
.box{display:inline-block;width:14px;height:10px;vertical-align:middle;margin-right:4px}
.tag{display:inline-block;font-size:11px;font-weight:600;padding:1px 6px;border-radius:9px;background:#eef1f4;color:#444;margin-left:6px;vertical-align:middle}
.tag.moved{background:#fde8e8;color:#b71c1c}.tag.ok{background:#e8f5e9;color:#2e7d32}
.firing{color:#b71c1c;font-weight:600}.resolved{color:#2e7d32;font-weight:600}.critical{color:#b71c1c}
.empty{color:#666;background:#fff;border:1px dashed #ccd;padding:10px;border-radius:6px}
footer{color:#666;font-size:12px;margin-top:32px}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: object, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    a = abs(value)
    if a >= 1e6 or (0 < a < 1e-3):
        return f"{value:.{digits}g}"
    if a >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _pct(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.1%}" if value < 0.995 or value == 1 else f"{value:.2%}"


@dataclass(frozen=True, slots=True)
class _Clock:
    """Writes x values: epoch ms as UTC times (without the date when the report spans one day), or offsets."""

    time_axis: bool
    same_day: bool = False

    def when(self, x: float | None) -> str:
        if x is None:
            return "–"
        if not self.time_axis:
            return f"offset {x:,.0f}"
        dt = datetime.fromtimestamp(x / 1000.0, tz=timezone.utc)
        text = dt.strftime("%H:%M:%S" if self.same_day else "%Y-%m-%d %H:%M:%S")
        return text + (f".{dt.microsecond // 1000:03d}" if dt.microsecond >= 1000 else "") + ("" if self.same_day else " UTC")

    def span(self, lo: float, hi: float) -> str:
        if not self.time_axis:
            return f"offsets {lo:,.0f} – {hi:,.0f}"
        seconds = (hi - lo) / 1000.0
        if seconds < 120:
            length = f"{seconds:.0f} s"
        elif seconds < 7200:
            length = f"{seconds / 60:.0f} min"
        elif seconds < 172800:
            length = f"{seconds / 3600:.1f} h"
        else:
            length = f"{seconds / 86400:.1f} days"
        a = datetime.fromtimestamp(lo / 1000.0, tz=timezone.utc)
        b = datetime.fromtimestamp(hi / 1000.0, tz=timezone.utc)
        end = b.strftime("%H:%M:%S" if a.date() == b.date() else "%Y-%m-%d %H:%M:%S")
        return f"{a:%Y-%m-%d %H:%M:%S} – {end} UTC ({length})"


def _clock(report: ReportData) -> _Clock:
    if not report.versions or not report.time_axis:
        return _Clock(report.time_axis)
    lo = min(v.x_range[0] for v in report.versions)
    hi = max(v.x_range[1] for v in report.versions)
    day = lambda x: datetime.fromtimestamp(x / 1000.0, tz=timezone.utc).date()  # noqa: E731
    return _Clock(True, day(lo) == day(hi))


def _fact(name: str, value: str) -> str:
    return f'<div class="fact"><b>{_e(name)}</b><span>{value}</span></div>'


def _alert_colour(alert: dict[str, object]) -> str:
    if alert.get("status") == "resolved":
        return RESOLVED_COLOUR
    return ALERT_COLOURS.get(str(alert.get("severity")), ALERT_COLOURS["warning"])


def _alert_title(alert: dict[str, object], clock: _Clock, x: float | None = None) -> str:
    return (f"{str(alert.get('status', '')).upper()} {alert.get('severity', '')} {alert.get('kind', '')}/"
            f"{alert.get('detector', '')} at {clock.when(x) if x is not None else alert.get('event_time')}: "
            f"{alert.get('summary', '')}")


def _alert_x(alert: dict[str, object], clock: _Clock) -> float | None:
    return record_x(alert, clock.time_axis, alert=True)


def _markers(alerts: list[dict[str, object]], clock: _Clock, *, missing: bool) -> list[Marker]:
    out = []
    for a in alerts:
        if (a.get("detector") in MISSING_DETECTORS) != missing:
            continue
        x = _alert_x(a, clock)
        if x is not None:
            out.append(Marker(x, _alert_colour(a), _alert_title(a, clock, x), a.get("status") == "resolved"))
    return out


def _by_series(points: list[Point]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for p in points:
        out.setdefault(p.series, []).append(p)
    return out


def _series_lines(points: list[Point], label: str, partitions: list[str]) -> list[Line]:
    lines = []
    for series, pts in _by_series(points).items():
        colour = SERIES_COLOURS[partitions.index(series) % len(SERIES_COLOURS)] if series in partitions else SERIES_COLOURS[0]
        name = f"{label} ({series})" if len(partitions) > 1 else label
        lines.append(Line([(p.x, p.value) for p in pts], colour, name))
    return lines


def _statistic_chart(f: FeatureData, v: VersionData, clock: _Clock) -> str:
    name = STAT_NAMES.get(f.statistic, f.statistic)
    lines = _series_lines(f.points, name, v.partitions)
    thresholds = [p for p in f.points if p.threshold is not None]
    if thresholds:
        values = {p.threshold for p in thresholds}
        if len(values) == 1:
            (t,) = values
            lines.append(Line([(v.x_range[0], t), (v.x_range[1], t)], THRESHOLD_COLOUR, f"threshold {t:g}", dashed=True,
                              width=1.3))
        else:
            for series, pts in _by_series(thresholds).items():
                lines.append(Line([(p.x, p.threshold) for p in pts], THRESHOLD_COLOUR,  # type: ignore[misc]
                                  f"threshold (critical value at the window's alpha, {series})", dashed=True,
                                  step=True, width=1.3))
    dots = [Dot(p.x, p.value, OVER_COLOUR,
                f"window ending {clock.when(p.x)} ({p.series}): {name} {p.value:.4g} > {p.threshold:.4g}")
            for p in f.points if p.over and p.threshold is not None]
    message = "no values yet: the reference is not complete" if f.kind != "unknown" else "only missing values"
    return line_chart(lines, x_range=v.x_range, time_axis=clock.time_axis, dots=dots,
                      markers=_markers(f.alerts, clock, missing=False), y_label=f"{f.name}: {name}",
                      empty_message=message)


def _secondary_chart(f: FeatureData, v: VersionData, clock: _Clock) -> str:
    if not f.secondary:
        return line_chart([], x_range=v.x_range, time_axis=clock.time_axis, empty_message="only missing values")
    name = STAT_NAMES.get(f.secondary, f.secondary)
    lines = _series_lines(f.secondary_points, name, v.partitions)
    return line_chart(lines, x_range=v.x_range, time_axis=clock.time_axis, y_label=f"{f.name}: {name}",
                      y_percent=f.secondary == "new_category_ratio", y_ceiling=1.0 if f.secondary == "new_category_ratio" else None,
                      empty_message="no values yet: the reference is not complete")


def _missing_chart(f: FeatureData, v: VersionData, clock: _Clock) -> str:
    lines = _series_lines(f.missing_points, "missing ratio", v.partitions)
    if f.reference_missing_ratio is not None:
        r = f.reference_missing_ratio
        lines.append(Line([(v.x_range[0], r), (v.x_range[1], r)], "#888", f"reference missing ratio {r:.2%}", dashed=True,
                          width=1.3))
    return line_chart(lines, x_range=v.x_range, time_axis=clock.time_axis, markers=_markers(f.alerts, clock, missing=True),
                      y_label=f"{f.name}: missing ratio", y_ceiling=1.0, y_percent=True)


def _distribution_chart(f: FeatureData) -> tuple[str, str]:
    """The chart and a one-line comparison under it."""
    ref, cur = f.reference_distribution, f.current_distribution
    if f.kind == NUMERIC:
        rows = [BoxRow("reference" if d is ref else "current", d.quantiles or {}, colour, d.mean)
                for d, colour in ((ref, REFERENCE_COLOUR), (cur, CURRENT_COLOUR)) if d is not None]
        summary = ""
        if ref is not None and cur is not None and ref.quantiles and cur.quantiles:
            a, b = ref.quantiles["p50"], cur.quantiles["p50"]
            iqr_a = ref.quantiles["p75"] - ref.quantiles["p25"]
            iqr_b = cur.quantiles["p75"] - cur.quantiles["p25"]
            summary = f"median {_num(a, 4)} → {_num(b, 4)}"
            if iqr_a > 0:
                summary += f" ({(b - a) / iqr_a:+.2f} reference IQR); IQR × {iqr_b / iqr_a:.2f}"
        return quantile_rows(rows, empty_message="no values"), summary
    if f.kind == CATEGORICAL:
        groups = []
        for d, colour, label in ((ref, REFERENCE_COLOUR, "reference"), (cur, CURRENT_COLOUR, "current")):
            if d is not None and d.categories:
                total = sum(d.categories.values()) or 1.0
                groups.append(BarGroup(f"{label}: {d.label}", {k: n / total for k, n in d.categories.items()}, colour,
                                       dict(d.categories)))
        names = sorted({k for g in groups for k in g.shares},
                       key=lambda k: (-max(g.shares.get(k, 0.0) for g in groups), k))
        summary = ""
        if len(names) > MAX_CATEGORIES:
            kept, rest = names[: MAX_CATEGORIES - 1], names[MAX_CATEGORIES - 1:]
            other = f"other ({len(rest)})"
            groups = [BarGroup(g.label, {**{k: g.shares.get(k, 0.0) for k in kept},
                                         other: sum(g.shares.get(k, 0.0) for k in rest)}, g.colour,
                               {**{k: g.counts.get(k, 0.0) for k in kept}, other: sum(g.counts.get(k, 0.0) for k in rest)})
                      for g in groups]
            names = kept + [other]
        if len(groups) == 2:
            moved = max(names, key=lambda k: abs(groups[1].shares.get(k, 0.0) - groups[0].shares.get(k, 0.0)))
            summary = (f"largest move: {moved} {groups[0].shares.get(moved, 0.0):.0%} → "
                       f"{groups[1].shares.get(moved, 0.0):.0%}")
        return category_bars(names, groups, empty_message="no values"), summary
    return quantile_rows([], empty_message="only missing values so far"), ""


def _legend(*items: str) -> str:
    return '<p class="legend">' + "".join(f"<span>{i}</span>" for i in items) + "</p>"


def _sw(colour: str, text: str, dashed: bool = False) -> str:
    return f'<i class="sw{" dash" if dashed else ""}" style="border-color:{colour}"></i>{_e(text)}'


def _feature_section(f: FeatureData, v: VersionData, anchor: str, rank: int | None, clock: _Clock,
                     tests: WindowTests) -> str:
    name = STAT_NAMES.get(f.statistic, f.statistic)
    tags = f'<span class="tag">{_e(f.kind)}</span>'
    if f.source != "features":
        tags += '<span class="tag">model output</span>'
    if rank is not None:
        tags += f'<span class="tag moved">moved #{rank} at {_e(clock.when(f.moved_at))}</span>'
    meta = [f"reference: {_e(f.reference)}", f"{f.windows:,} windows",
            f"{_e(name)}: latest {_num(f.points[-1].value) if f.points else '–'}, max {_num(f.max_statistic)}",
            f"missing: latest {_pct(f.missing_points[-1].value) if f.missing_points else '–'}",
            f"alerts: {f.firing} firing, {len(f.alerts) - f.firing} resolved"]
    dist_svg, dist_summary = _distribution_chart(f)
    ref, cur = f.reference_distribution, f.current_distribution
    notes = []
    if ref is not None:
        notes.append(f"reference: {_e(ref.note)}")
    if cur is not None:
        notes.append(f"current: {_e(cur.note)}")
    if dist_summary:
        notes.insert(0, f"<b>{_e(dist_summary)}</b>")
    if f.kind == NUMERIC:
        dist_legend = _legend("whiskers p01–p99", "band p05–p95", "box p25–p75", "bar: median", "◇ mean")
    else:
        dist_legend = _legend(f'<i class="box" style="background:{REFERENCE_COLOUR}"></i>reference',
                              f'<i class="box" style="background:{CURRENT_COLOUR}"></i>current', "bars: share of values")
    series = ([_sw(SERIES_COLOURS[0], name)] if len(v.partitions) <= 1 else
              [_sw(SERIES_COLOURS[i % len(SERIES_COLOURS)], p) for i, p in enumerate(v.partitions)])
    stat_legend = _legend(*series, _sw(THRESHOLD_COLOUR, "threshold", True),
                          f'<i class="dot" style="background:{OVER_COLOUR}"></i>window over threshold (significant)',
                          f'<i class="tri" style="border-top-color:{ALERT_COLOURS["warning"]}"></i>firing alert',
                          f'<i class="tri" style="border-top-color:{ALERT_COLOURS["critical"]}"></i>critical',
                          f'<i class="dot" style="border:2px solid {RESOLVED_COLOUR}"></i>resolved')
    missing_series = ([_sw(SERIES_COLOURS[0], "missing ratio")] if len(v.partitions) <= 1 else
                      [_sw(SERIES_COLOURS[i % len(SERIES_COLOURS)], p) for i, p in enumerate(v.partitions)])
    missing_legend = _legend(*missing_series,
                             _sw("#888", "reference" + (f" {f.reference_missing_ratio:.2%}" if f.reference_missing_ratio is not None else " (unknown)"), True),
                             "markers: missing-rate / vanished-feature alerts")
    secondary = STAT_NAMES.get(f.secondary, f.secondary) if f.secondary else "second statistic"
    secondary_note = ("the window's mean minus the reference mean, in reference standard deviations (what Page-Hinkley and ADWIN follow)"
                      if f.kind == NUMERIC else "share of the window's values in categories the reference never saw")
    return f"""
<section class="feature" id="{anchor}">
<h4>{_e(f.name)}{tags}</h4>
<p class="meta">{" · ".join(meta)}</p>
<div class="grid">
<figure><figcaption>Distribution: reference vs current</figcaption>{dist_svg}{dist_legend}<p class="note">{"<br>".join(notes)}</p></figure>
<figure><figcaption>{_e(name)} per window ({"alerting statistic" if (tests.numeric_test if f.kind == NUMERIC else tests.categorical_test) != "off" else "window test off"})</figcaption>{_statistic_chart(f, v, clock)}{stat_legend}</figure>
<figure><figcaption>{_e(secondary)} per window</figcaption>{_secondary_chart(f, v, clock)}<p class="note">{_e(secondary_note)}</p></figure>
<figure><figcaption>Missing ratio per window</figcaption>{_missing_chart(f, v, clock)}{missing_legend}</figure>
</div>
</section>"""


def _first_signal(f: FeatureData, clock: _Clock) -> str:
    alert_x = f.first_alert_x
    over = f.first_over
    if alert_x is not None and (over is None or alert_x <= over.x):
        a = f.first_alert or {}
        return f"alert {_e(a.get('detector'))} ({_e(a.get('severity'))}): {_e(a.get('summary', ''))}"
    if over is not None:
        return (f"window {_e(STAT_NAMES.get(f.statistic, f.statistic))} {_num(over.value)} &gt; "
                f"{_num(over.threshold)} ({_e(over.series)})")
    return "–"


def _moved_table(v: VersionData, anchors: dict[int, str], clock: _Clock) -> str:
    moved = v.moved
    if not moved:
        return ('<p class="empty">No feature moved: no firing alert and no window over its threshold '
                f"in {v.windows:,} windows.</p>")
    start = v.x_range[0]
    rows = []
    for rank, f in enumerate(moved[:MAX_MOVED_ROWS], 1):
        after = ""
        if clock.time_axis and f.moved_at is not None:
            after = f"+{(f.moved_at - start) / 1000.0:,.0f} s"
        rows.append(
            f'<tr class="moved"><td class="num">{rank}</td><td class="name"><a href="#{anchors[id(f)]}">{_e(f.name)}</a></td>'
            f"<td class=\"time\">{_e(clock.when(f.moved_at))}</td><td class=\"num\">{after}</td>"
            f'<td class="signal">{_first_signal(f, clock)}</td>'
            f"<td class=\"time\">{_e(clock.when(f.first_alert_x))}</td>"
            f"<td class=\"time\">{_e(clock.when(f.first_over.x if f.first_over else None))}</td>"
            f'<td class="num">{_num(f.max_statistic)}</td><td class="num">{f.firing}</td></tr>')
    return ("<table><thead><tr><th class=\"num\">#</th><th>feature</th><th>moved at</th><th class=\"num\">after start</th>"
            "<th>first signal</th><th>first firing alert</th><th>first window over threshold</th>"
            "<th class=\"num\">max statistic</th><th class=\"num\">firing alerts</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>"
            + (f'<p class="note">{len(moved) - MAX_MOVED_ROWS:,} more features moved later: see the table below.</p>'
               if len(moved) > MAX_MOVED_ROWS else ""))


def _overview_table(v: VersionData, anchors: dict[int, str]) -> str:
    rows = []
    for f in v.features:
        name = STAT_NAMES.get(f.statistic, f.statistic)
        latest = f.points[-1].value if f.points else None
        missing = f.missing_points[-1].value if f.missing_points else None
        status = ('<span class="tag moved">moved</span>' if f.moved_at is not None else '<span class="tag ok">stable</span>')
        rows.append(
            f'<tr{" class=moved" if f.moved_at is not None else ""}><td class="name"><a href="#{anchors[id(f)]}">{_e(f.name)}</a></td>'
            f"<td>{_e(f.kind)}{' (output)' if f.source != 'features' else ''}</td><td>{_e(f.reference)}</td>"
            f'<td class="num">{f.windows:,}</td><td>{_e(name)}</td><td class="num">{_num(latest)}</td>'
            f'<td class="num">{_num(f.max_statistic)}</td><td class="num">{_pct(missing)}</td>'
            f'<td class="num">{f.firing}</td><td>{status}</td></tr>')
    return ("<table><thead><tr><th>feature</th><th>type</th><th>reference</th><th class=\"num\">windows</th>"
            "<th>statistic</th><th class=\"num\">latest</th><th class=\"num\">max</th><th class=\"num\">missing (latest)</th>"
            "<th class=\"num\">firing alerts</th><th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _alerts_table(alerts: list[dict[str, object]], clock: _Clock) -> str:
    if not alerts:
        return '<p class="empty">No alerts.</p>'
    shown = alerts[-MAX_ALERT_ROWS:]
    rows = []
    for a in shown:
        status = str(a.get("status", ""))
        rows.append(
            f"<tr><td class=\"time\">{_e(clock.when(_alert_x(a, clock)))}</td><td class=\"{_e(status)}\">{_e(status)}</td>"
            f"<td class=\"{_e(a.get('severity', ''))}\">{_e(a.get('severity', ''))}</td><td class=\"name\">{_e(a.get('feature', ''))}</td>"
            f"<td>{_e(a.get('kind', ''))} / {_e(a.get('detector', ''))}</td>"
            f'<td class="num">{_num(a.get("statistic"))} &gt; {_num(a.get("threshold"))}</td><td>{_e(a.get("summary", ""))}</td></tr>')
    note = (f'<p class="note">The newest {MAX_ALERT_ROWS:,} of {len(alerts):,} alerts.</p>' if len(alerts) > len(shown) else "")
    return ("<table><thead><tr><th>event time</th><th>status</th><th>severity</th><th>feature</th><th>kind / detector</th>"
            "<th class=\"num\">statistic &gt; threshold</th><th>summary</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>" + note)


def _references(v: VersionData) -> str:
    if not v.references:
        return "–"
    out = []
    for r in v.references:
        if r.startswith("profile@"):
            out.append(f"{_e(r)} ({'supplied' if r in v.profiles_supplied else 'not supplied: pass --reference-files'})")
        else:
            out.append(f"{_e(r)} (each feature's first values)")
    return "<br>".join(out)


#: Colour of the model-quality line (accuracy or MAE) and of label coverage.
QUALITY_COLOUR = "#4c78a8"
COVERAGE_COLOUR = "#54a24b"


def _quality_section(v: VersionData, q: QualityData, clock: _Clock) -> str:
    """Accuracy (or MAE) and label coverage per window, with the concept-drift alerts marked and listed."""
    name = "accuracy" if q.metric == "accuracy" else "MAE"
    markers = []
    for a in q.concept_alerts:
        x = _alert_x(a, clock)
        if x is not None:
            markers.append(Marker(x, _alert_colour(a), _alert_title(a, clock, x), a.get("status") == "resolved"))
    lines = [Line([(p.x, p.value) for p in pts], SERIES_COLOURS[i % len(SERIES_COLOURS)], f"{name} ({series})")
             for i, (series, pts) in enumerate(_by_series(q.points).items())]
    metric_chart = line_chart(lines, x_range=v.x_range, time_axis=clock.time_axis, markers=markers,
                              y_label=f"{v.model} {v.model_version}: {name}", y_percent=q.metric == "accuracy",
                              y_ceiling=1.0 if q.metric == "accuracy" else None,
                              empty_message="no labeled window yet")
    coverage = [Line([(p.x, p.value) for p in pts], COVERAGE_COLOUR if i == 0 else SERIES_COLOURS[i % len(SERIES_COLOURS)],
                     f"label coverage ({series})") for i, (series, pts) in enumerate(_by_series(q.coverage_points).items())]
    coverage_chart = line_chart(coverage, x_range=v.x_range, time_axis=clock.time_axis, y_ceiling=1.0, y_percent=True,
                                y_label=f"{v.model} {v.model_version}: label coverage", empty_message="no inferences")
    firing = sum(1 for a in q.concept_alerts if a.get("status") == "firing")
    meta = [f"task: {_e(q.task)}", f"{name}: latest {_pct(q.latest) if q.metric == 'accuracy' else _num(q.latest)}",
            f"labeled: {q.labeled:,} of {q.inferences:,} inferences ({_pct(q.coverage)})",
            f"concept-drift alerts: {firing} firing, {len(q.concept_alerts) - firing} resolved"]
    legend = _legend(_sw(QUALITY_COLOUR, name),
                     f'<i class="tri" style="border-top-color:{ALERT_COLOURS["warning"]}"></i>concept-drift alert',
                     f'<i class="tri" style="border-top-color:{ALERT_COLOURS["critical"]}"></i>critical',
                     f'<i class="dot" style="border:2px solid {RESOLVED_COLOUR}"></i>resolved')
    table = (_alerts_table(q.concept_alerts, clock) if q.concept_alerts
             else '<p class="empty">No concept-drift alerts.</p>')
    return f"""
<h3>Model quality</h3>
<section class="feature quality">
<p class="meta">{" · ".join(meta)}</p>
<div class="grid">
<figure><figcaption>{_e(name)} per window (labels joined in the window)</figcaption>{metric_chart}{legend}</figure>
<figure><figcaption>Label coverage per window</figcaption>{coverage_chart}<p class="note">labels joined in the window / inferences of the window; a label that arrives a window late counts in the next one</p></figure>
</div>
<h4>Concept-drift alerts</h4>
{table}
</section>"""


def _version_section(v: VersionData, index: int, report: ReportData) -> str:
    clock = _clock(report)
    anchors = {id(f): f"v{index}-f{i}" for i, f in enumerate(v.features)}
    firing = sum(1 for a in v.alerts if a.get("status") == "firing")
    facts = "" if len(report.versions) == 1 else "".join([
        _fact("event time" if clock.time_axis else "offsets", _e(clock.span(*v.x_range))),
        _fact("events", f"{v.events:,}"),
        _fact("windows", f"{v.windows:,} on {len(v.partitions)} partition{'s' if len(v.partitions) != 1 else ''}"),
        _fact("features and outputs", f"{len(v.features):,} ({len(v.moved):,} moved)"),
        _fact("alerts", f"{firing:,} firing, {len(v.alerts) - firing:,} resolved"),
        _fact("reference", _references(v)),
    ])
    ranks = {id(f): i for i, f in enumerate(v.moved, 1)}
    sections = "".join(_feature_section(f, v, anchors[id(f)], ranks.get(id(f)), clock, report.tests)
                       for f in v.features)
    other = ""
    if v.other_alerts:
        other = ("<h3>Alerts about labels, outputs and versions</h3>"
                 + _alerts_table(v.other_alerts, clock))
    return f"""
<h2>{_e(v.model)} · version {_e(v.model_version)}</h2>
{f'<div class="facts">{facts}</div>' if facts else ""}
{_quality_section(v, v.quality, clock) if v.quality is not None else ""}
<h3>Features that moved first</h3>
<p class="sub">Ordered by the first firing alert or the first window whose statistic was over its threshold and significant, whichever came first.</p>
{_moved_table(v, anchors, clock)}
<h3>All features</h3>
{_overview_table(v, anchors)}
<h3>Per feature</h3>
{sections}
{other}
<h3>Alerts</h3>
{_alerts_table(v.alerts, clock)}
"""


def render(report: ReportData) -> str:
    """The whole page.

    >>> from driftline.report.data import assemble
    >>> page = render(assemble([], [], model="<m>", source="x.jsonl", generated_at="now"))
    >>> "&lt;m&gt;" in page and "<script" not in page
    True
    """
    tests = report.tests
    versions = ", ".join(v.model_version for v in report.versions) or "–"
    if report.versions:
        lo = min(v.x_range[0] for v in report.versions)
        hi = max(v.x_range[1] for v in report.versions)
        span = _clock(report).span(lo, hi)
    else:
        span = "–"
    partitions = {p for v in report.versions for p in v.partitions}
    firing = sum(1 for v in report.versions for a in v.alerts if a.get("status") == "firing")
    resolved = sum(1 for v in report.versions for a in v.alerts if a.get("status") == "resolved")
    facts = "".join([
        _fact("model", _e(report.model)),
        _fact("versions", _e(versions) + (f" (also in the data: {_e(', '.join(report.other_versions))})"
                                          if report.other_versions else "")),
        _fact("event time" if report.time_axis else "offsets", _e(span)),
        _fact("events", f"{sum(v.events for v in report.versions):,}"),
        _fact("windows", f"{sum(v.windows for v in report.versions):,} on {len(partitions)} partition"
                         f"{'s' if len(partitions) != 1 else ''}"),
        _fact("features and outputs", f"{sum(len(v.features) for v in report.versions):,} "
                                      f"({sum(len(v.moved) for v in report.versions):,} moved)"),
        _fact("alerts", f"{firing:,} firing, {resolved:,} resolved"),
        _fact("reference", "<br>".join(_references(v) for v in report.versions) or "–"),
        _fact("window tests", _e(f"numeric: {tests.numeric_test}, categorical: {tests.categorical_test}")),
    ])
    body = "".join(_version_section(v, i, report) for i, v in enumerate(report.versions))
    if not report.versions:
        body = f'<p class="empty">No window summaries of model {_e(report.model)}.</p>'
    axis = ("event time (UTC), each point at its window's last event" if report.time_axis
            else "the window's last offset (some windows had no event time)")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>driftline report: {_e(report.model)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>Drift report: {_e(report.model)}</h1>
<p class="sub">driftline · generated {_e(report.generated_at)} · from {_e(report.source)}</p>
<div class="facts">{facts}</div>
{body}
<footer>
<p>Charts: x is {_e(axis)}. The windowed statistic is the one that alerts (settings numeric_window_test /
categorical_window_test, thresholds psi_threshold, ks_threshold, wasserstein_threshold, jensen_shannon_threshold as
given to this report; chi-square is compared with its critical value at the window's alpha); a red dot is a window
that met the alert condition. Alert markers sit at the event time of the record at which the alert fired
(triangle: firing, orange warning / dark red critical; circle: resolved). Numeric distributions are drawn from
quantiles: the reference profile's sketch, or the count-weighted average of the warm-up windows' quantiles;
categorical ones from counts (window summaries keep each window's 20 most frequent categories).
Hover over a chart element for exact values.</p>
</footer>
</main>
</body>
</html>
"""

"""Model quality in the report: accuracy and label coverage per window, and the concept-drift alerts,
from a labeled stream whose outcome flips part-way (tests/report/labeled.py); drawn in headless Chromium."""

from __future__ import annotations

from collections import Counter

import orjson

from driftline.cli.main import main
from driftline.report.data import assemble
from driftline.report.html import render
from labeled import FLIP_AT, MODEL, STEP_MS, T0, run
from test_report_chromium import HEIGHT, WIDTH, screenshot
from tools import require_binary


def test_quality_per_window_follows_the_flip_and_names_the_concept_drift():
    data = assemble(run().summaries, run().alerts, model=MODEL)
    (version,) = data.versions
    q = version.quality
    assert q is not None and (q.task, q.metric) == ("classification", "accuracy")
    flip_ms = T0 + FLIP_AT * STEP_MS
    before = [p.value for p in q.points if p.x < flip_ms]
    after = [p.value for p in q.points if p.x > flip_ms + 1000 * STEP_MS]
    assert len(q.points) >= 10 and before and after
    assert min(before) > 0.7 and max(after) < 0.3, (before, after)
    assert 0.9 < q.coverage <= 1.0 and all(0.9 < p.value <= 1.1 for p in q.coverage_points)  # labels a window late
    (alert,) = q.concept_alerts
    assert alert["kind"] == "concept_drift" and alert["status"] == "firing"
    page = render(data)
    assert "<h3>Model quality</h3>" in page and "accuracy per window" in page and "Label coverage per window" in page
    assert page.count("concept_drift / ") >= 1


def test_a_model_without_labels_has_no_quality_section():
    summaries = [s for s in run().summaries if s["type"] != "performance_summary"]
    data = assemble(summaries, [], model=MODEL)
    assert data.versions[0].quality is None and "Model quality" not in render(data)


def _colour(r: int, g: int, b: int) -> str:
    if b > r + 40 and b > g + 10:
        return "blue"   # accuracy
    if g > r + 40 and g > b + 40:
        return "green"  # label coverage
    if r > 200 and 100 <= g <= 200 and b < 130:
        return "orange"  # a warning alert marker
    if r > 150 and g < 90 and b < 90:
        return "red"     # a critical alert marker
    return "other"


def test_quality_charts_render_in_headless_chromium(tmp_path):
    chromium = require_binary("chromium")
    summaries, alerts = tmp_path / "summaries.jsonl", tmp_path / "alerts.jsonl"
    summaries.write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in run().summaries))
    alerts.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in run().alerts))
    page = tmp_path / "report.html"
    assert main(["report", "--summaries", str(summaries), "--alerts", str(alerts), "--model", MODEL,
                 "--output", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    hidden = tmp_path / "hidden.html"
    hidden.write_text(html.replace("</head>", "<style>.quality svg{visibility:hidden}</style></head>", 1), encoding="utf-8")
    shown = screenshot(chromium, page, tmp_path / "report.png", tmp_path / "chromium")
    blank = screenshot(chromium, hidden, tmp_path / "hidden.png", tmp_path / "chromium")
    assert len(shown) == HEIGHT and len(shown[0]) == 3 * WIDTH
    drawn: Counter[str] = Counter()
    for a, b in zip(shown, blank):
        if a != b:
            for i in range(0, len(a), 3):
                if a[i:i + 3] != b[i:i + 3]:
                    drawn[_colour(a[i], a[i + 1], a[i + 2])] += 1
    # the accuracy line (blue), the coverage line (green) and the concept-drift marker (orange or red)
    assert sum(drawn.values()) > 5000, drawn
    assert drawn["blue"] > 300 and drawn["green"] > 300 and drawn["orange"] + drawn["red"] > 20, drawn

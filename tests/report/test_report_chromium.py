"""The report of a real drifting stream, rendered by headless Chromium: the screenshot shows the charts.

The page is shot twice, as written and with its SVG charts hidden (same
layout); the pixels that differ are what the charts drew, so the test can
tell charts from the tables and text around them.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from drifting import MODEL, SETTINGS, write_events
from driftline.cli.main import main
from pngread import read_png
from tools import require_binary

WIDTH, HEIGHT = 1100, 1700


def colour_class(r: int, g: int, b: int) -> str | None:
    """The report's chart colours, also where drawn translucent: reference blue, current orange, threshold red."""
    if b > r + 40 and b > g + 10:
        return "blue"
    if r > 200 and 100 <= g <= 200 and b < 130:
        return "orange"
    if r > 170 and g < 90 and b < 90:
        return "red"
    return None


def screenshot(chromium: str, page: Path, shot: Path, profile: Path) -> list[bytes]:
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                           f"--user-data-dir={profile}", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                           page.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}"
    width, height, rows = read_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    return rows


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = require_binary("chromium")
    events = write_events(tmp_path / "events.jsonl")
    page = tmp_path / "report.html"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    assert main(["report", str(events), "--model", MODEL, "--output", str(page), *flags]) == 0
    html = page.read_text(encoding="utf-8")
    hidden = tmp_path / "hidden.html"
    hidden.write_text(html.replace("</head>", "<style>svg{visibility:hidden}</style></head>", 1), encoding="utf-8")
    shown = screenshot(chromium, page, tmp_path / "report.png", tmp_path / "chromium")
    blank = screenshot(chromium, hidden, tmp_path / "hidden.png", tmp_path / "chromium")

    pixels = Counter((row[i], row[i + 1], row[i + 2]) for row in shown for i in range(0, len(row), 3))
    assert pixels[(255, 255, 255)] + pixels[(0xF4, 0xF5, 0xF7)] < 0.95 * WIDTH * HEIGHT, "the page is (nearly) blank"
    drawn: Counter[str] = Counter()
    changed = 0
    for a, b in zip(shown, blank):
        if a == b:
            continue
        for i in range(0, len(a), 3):
            if a[i:i + 3] != b[i:i + 3]:
                changed += 1
                drawn[colour_class(a[i], a[i + 1], a[i + 2]) or "other"] += 1
    # The first feature's card (income, which moved first) is on screen: grid lines, axes and labels,
    # its reference (blue) and current (orange) quantile boxes, the statistic line (blue), the threshold,
    # the windows over it and the alert markers (red).
    assert changed > 15_000, f"the charts drew only {changed} pixels"
    assert drawn["blue"] > 1500 and drawn["orange"] > 800 and drawn["red"] > 40, drawn  # one alert marker (one incident) and the threshold

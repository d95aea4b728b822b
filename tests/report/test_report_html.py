"""The page: self-contained, well-formed, escaped, and showing what moved first."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import orjson

from drifting import MODEL, STATIONARY, replayed, training_profile
from driftline.cli.replay import FileReplay
from driftline.config import load_settings
from driftline.report import assemble, render

VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "area", "base", "col", "embed", "source", "track",
        # SVG elements written self-closing
        "line", "rect", "circle", "path", "polyline"}


class Balance(HTMLParser):
    """Checks that every element opened is closed in order; collects tags, attributes, style and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.style: list[str] = []
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.extend((k, v or "") for k, v in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.extend((k, v or "") for k, v in attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        (self.style if self.stack[-1:] == ["style"] else self.text).append(data)


def check_page(page: str) -> str:
    """Assert the page is self-contained (nothing to fetch, nothing to run) and well-formed; return its text."""
    parser = Balance()
    parser.feed(page)
    parser.close()
    assert not parser.errors and parser.stack == [], (parser.errors, parser.stack)
    assert not parser.tags & {"script", "link", "iframe", "img", "object", "embed", "image", "use", "foreignobject"}
    assert not [k for k, _ in parser.attrs if k in ("src", "srcset", "xlink:href") or k.startswith("on")]
    assert all(v.startswith("#") for k, v in parser.attrs if k == "href")  # in-page links only
    style = "".join(parser.style) + "".join(v for k, v in parser.attrs if k == "style")
    assert "url(" not in style and "@import" not in style and "//" not in style
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert svgs
    for svg in svgs:
        ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    return "".join(parser.text)


def test_page_of_a_drifting_stream():
    run = replayed(True)
    profile = training_profile()
    report = assemble(run.summaries, run.alerts, model=MODEL, profiles=[profile], source="events.jsonl",
                      generated_at="2026-01-01T00:00:00.000Z")
    page = render(report)
    text = check_page(page)
    assert f"{profile.name} (supplied)" in text
    assert "6,000" in text  # events
    # one card per feature, four charts each
    assert page.count('class="feature"') == 6
    assert page.count("<svg") == 6 * 4
    # the moved table lists the moved features in order, and only them
    moved_table = page.split("Features that moved first")[1].split("All features")[0]
    names = re.findall(r'<td class="name"><a href="#[^"]+">([^<]+)</a>', moved_table)
    assert names == [f.name for f in report.versions[0].moved] and "income" in names
    assert not set(names) & set(STATIONARY)
    # alerts are drawn: one marker per alert on the feature charts
    assert page.count('<g class="alert">') == len(run.alerts)


def test_every_user_string_is_escaped(tmp_path):
    evil_model = 'm<b>&"\''
    evil_feature = '<img src=x onerror=alert(1)>'
    evil_category = '"><script>alert(2)</script>'
    rng = np.random.default_rng(1)
    path = tmp_path / "evil.jsonl"
    with path.open("wb") as f:
        for i in range(1200):
            doc = {"model": evil_model, "model_version": "</title><h1>v", "timestamp": 1_700_000_000_000 + i * 100,
                   "features": {evil_feature: float(rng.normal() + (3 if i > 800 else 0)),
                                "c": evil_category if i % 2 else "plain"}}
            f.write(orjson.dumps(doc) + b"\n")
    run = FileReplay(load_settings(warmup=200, window_events=200, labels_topic=""), str(path), topic="<topic>")
    summaries, alerts = [], []
    for result in run.results():
        summaries += result.summaries
        alerts += result.alerts
    assert alerts  # the alert summaries repeat the hostile names too
    page = render(assemble(summaries, alerts, model=evil_model, source="<file>", generated_at="now"))
    text = check_page(page)
    for raw in (evil_model, evil_feature, evil_category, "</title><h1>v", "<topic>", "<file>"):
        assert raw not in page
    assert evil_feature in text and evil_model in text and "<file>" in text

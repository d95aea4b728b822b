"""docs/client.md must follow the code: every argument, method, counter, metric and example flag is described."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

import driftline.client as client
from driftline.client import ClientStats, PredictionLogger

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "client.md").read_text(encoding="utf-8")


def missing(tokens) -> list[str]:
    return [t for t in tokens if re.search(rf"(?<![A-Za-z0-9_]){re.escape(t)}(?![A-Za-z0-9_])", DOC) is None]


def test_every_constructor_argument_method_and_counter_is_documented():
    args = [n for n in inspect.signature(PredictionLogger).parameters]
    methods = ["log", "log_label", "flush", "close", "aflush", "aclose", "stats", "last_error"]
    absent = missing(args + methods + list(ClientStats._fields) + ["PredictionLogger", "ClientStats", "RecordError"])
    assert not absent, f"docs/client.md does not describe {absent}; add them to the API section"


def test_every_exported_metric_is_documented():
    registry = CollectorRegistry()
    logger = PredictionLogger("127.0.0.1:1", registry=registry, kafka={"log_level": 0})
    logger.close(0)
    names = {m.name + ("_total" if m.type == "counter" else "") for m in registry.collect()}
    assert len(names) == 6
    absent = missing(sorted(names))
    assert not absent, f"docs/client.md does not list the metric(s) {absent}; add them to the Counters table"


def test_every_example_flag_is_documented():
    spec = importlib.util.spec_from_file_location("model_server_doc", ROOT / "examples" / "model_server.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    flags = [a.option_strings[0] for a in example.build_parser()._actions if a.option_strings and a.dest != "help"]
    absent = [f for f in flags if f not in DOC]
    assert not absent, f"docs/client.md does not describe the example's flag(s) {absent}; add them to its flag table"
    assert client.__all__ and "docs/client.md" in (ROOT / "README.md").read_text(encoding="utf-8")

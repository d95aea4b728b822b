"""The user documentation under docs/ must follow the code.

Each failure message names the document to update and how.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from driftline.config import ENV_PREFIX, Settings
from driftline.contract.decode import DeadLetterReason
from driftline.contract.schema import json_schema
from driftline.detection.alerts import FIRING, RESOLVED, AlertBook, render
from driftline.detection.findings import Finding, Kind, Severity, WindowSpan
from driftline.detection.monitor import Check
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import DEADLETTER_HEADERS

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_FILE = DOCS / "inference-event.schema.json"
INPUT_CONTRACT = DOCS / "input-contract.md"
OUTPUTS = DOCS / "outputs.md"
CONFIGURATION = DOCS / "configuration.md"


def _read(path: Path) -> str:
    assert path.is_file(), f"{path.relative_to(DOCS.parent)} is missing"
    return path.read_text(encoding="utf-8")


def _names_a_token(text: str, token: str) -> bool:
    """``token`` occurs as a whole identifier (not as part of a longer one)."""
    return re.search(rf"(?<![A-Za-z0-9_.]){re.escape(token)}(?![A-Za-z0-9_])", text) is not None


def _missing_tokens(text: str, tokens) -> list[str]:
    return [t for t in tokens if not _names_a_token(text, t)]


# --------------------------------------------------------------- (a) schema
def test_schema_file_is_the_generated_schema():
    on_disk = json.loads(_read(SCHEMA_FILE))
    assert on_disk == json_schema(), (
        "docs/inference-event.schema.json differs from driftline.contract.schema.json_schema(); "
        "regenerate it (do not hand-edit): driftline schema > docs/inference-event.schema.json"
    )


def test_input_contract_links_the_schema_file():
    assert "(inference-event.schema.json)" in _read(INPUT_CONTRACT), (
        "docs/input-contract.md must link the JSON Schema: add [inference-event.schema.json](inference-event.schema.json)"
    )


# -------------------------------------------------------- (b) configuration
#: mappings have no flag (see driftline.cli.main._add_setting_flags)
_NO_FLAG = ("kafka", "models")

@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented(name):
    text = _read(CONFIGURATION)
    env = f"{ENV_PREFIX}{name.upper()}"
    missing = []
    if f"`{name}`" not in text:
        missing.append(f"`{name}`")
    # DRIFTLINE_KAFKA__<PROPERTY> documents DRIFTLINE_KAFKA; other suffixes would be another setting.
    if re.search(rf"(?<![A-Za-z0-9_]){re.escape(env)}(?![A-Za-z0-9]|_[A-Za-z0-9])", text) is None:
        missing.append(env)
    if name not in _NO_FLAG and not _names_a_token(text, "--" + name.replace("_", "-")):
        missing.append("--" + name.replace("_", "-"))
    assert not missing, (
        f"docs/configuration.md does not mention {', '.join(missing)} of setting {name!r}; add a row for it to the "
        f"settings table (setting, environment variable, flag, default, description from "
        f"Settings.model_fields[{name!r}])"
    )


# ------------------------------------------------------ (c) input contract
def test_every_dead_letter_reason_is_documented():
    missing = _missing_tokens(_read(INPUT_CONTRACT), DeadLetterReason.ALL)
    assert not missing, (
        f"docs/input-contract.md does not list the dead-letter reason(s) {missing}; add them to the "
        f"dead-letter table with when they happen (see driftline.contract.decode.decode_event)"
    )


def test_every_dead_letter_header_is_documented():
    missing = _missing_tokens(_read(INPUT_CONTRACT), DEADLETTER_HEADERS)
    assert not missing, (
        f"docs/input-contract.md does not list the dead-letter header(s) {missing}; add them to the "
        f"header table (see DEADLETTER_HEADERS in driftline.transport.worker)"
    )


def test_every_data_quality_check_is_documented():
    checks = [v for k, v in vars(Check).items() if k.isupper() and v != Check.CHI_SQUARE]
    missing = _missing_tokens(_read(INPUT_CONTRACT), checks)
    assert not missing, (
        f"docs/input-contract.md does not list the data-quality check(s) {missing}; add them to the "
        f"data-quality table (see driftline.detection.monitor.Check)"
    )


# ------------------------------------------------------------- (d) outputs
def _exposed_metric_names() -> list[str]:
    metrics = WorkerMetrics(process_metrics=False)
    names = []
    for family in metrics.registry.collect():
        # prometheus_client drops the _total suffix from counter family names.
        names.append(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_every_metric_is_documented():
    names = _exposed_metric_names()
    assert len(names) > 10
    missing = _missing_tokens(_read(OUTPUTS), names)
    assert not missing, (
        f"docs/outputs.md does not list the metric(s) {missing}; add them to the Prometheus metrics table "
        f"with type, labels and meaning (see driftline.observability.metrics.WorkerMetrics)"
    )


def _finding() -> Finding:
    return Finding(model="m", model_version="v1", feature="x", kind=Kind.DATA_DRIFT, detector="page_hinkley",
                   severity=Severity.WARNING, statistic=9.0, threshold=5.0, summary="s",
                   window=WindowSpan("in", 0, 10, 20, 1_000, 2_000), event_time_ms=2_000)


def test_every_alert_field_is_documented():
    book = AlertBook(cooldown_seconds=1, resolve_after_seconds=1)
    (firing,) = book.observe(_finding(), 2_000)
    book.health(_finding().key, True, 3_000, _finding().window)
    (resolved,) = book.tick(10_000)
    assert firing["status"] == FIRING and resolved["status"] == RESOLVED
    fields = set(render(_finding(), FIRING)) | set(resolved) | set(firing["window"])
    missing = _missing_tokens(_read(OUTPUTS), sorted(fields))
    assert not missing, (
        f"docs/outputs.md does not describe the alert field(s) {missing}; add them to the alert field tables "
        f"(see driftline.detection.alerts.render and AlertBook.tick)"
    )


def test_every_window_summary_field_is_documented():
    import orjson

    from driftline.contract.event import SourceRecord
    from driftline.detection.pipeline import Pipeline, PipelineSettings
    from driftline.detection.settings import MonitorSettings

    settings = MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=100, window_events=100, window_seconds=None)
    pipeline = Pipeline(PipelineSettings(monitor=settings))
    records = []
    for i in range(400):
        features = {"x": float(i % 7), "c": "ab"[i % 2], "n": None}
        if i >= 200 and i % 3 == 0:
            del features["x"]  # a missing rate above warm-up's, so the summary reports its p-value
        records.append(SourceRecord("in", 0, i, 1_700_000_000_000 + i, b"m",
                                    orjson.dumps({"model": "m", "features": features, "prediction": 0.5})))
    summaries = pipeline.process(records).summaries
    types = {s["feature_type"] for s in summaries}
    assert {"numeric", "categorical", "unknown"} <= types
    fields = set()
    for s in summaries:
        fields |= set(s)
        for nested in ("drift", "quantiles"):
            if isinstance(s.get(nested), dict):
                fields |= set(s[nested])
    assert "missing_p_value" in fields
    missing = _missing_tokens(_read(OUTPUTS), sorted(fields))
    assert not missing, (
        f"docs/outputs.md does not describe the window-summary field(s) {missing}; add them to the window "
        f"summary tables (see driftline.detection.monitor.ModelMonitor._window_feature)"
    )

"""/metrics at scale: per-feature families that render their own text, and the per-model mode (metrics_series)."""

from __future__ import annotations

import re
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.config import load_settings
from driftline.detection.pipeline import BatchResult
from driftline.observability.exposition import Family
from driftline.observability.metrics import DRIFT_STATISTICS, WorkerMetrics
from driftline.observability.server import MetricsServer

HOSTILE = ['plain', 'a"quote', "back\\slash", "new\nline", "\\n literally", 'all "\\\n', "ünï©ødé ✓", "tab\tand\rcr",
           "", " spaces ", "}{,=", "\x00\x7f"]


def _created_free(text: bytes) -> bytes:
    """Text without the ``_created`` values (timestamps of when a series appeared)."""
    return re.sub(rb"(_created\{[^\n]*\}) [^\n]*\n", rb"\1 T\n", text)


def _pair(kind: str, labelnames: list[str]):
    name = "x_total" if kind == "counter" else "x"
    registry = CollectorRegistry()
    theirs = (Counter if kind == "counter" else Gauge)(name, 'doc with "quotes", \\ and\nnewline', labelnames, registry=registry)
    ours = Family(name, 'doc with "quotes", \\ and\nnewline', kind, labelnames)
    return registry, theirs, ours


@pytest.mark.parametrize("kind", ["gauge", "counter"])
def test_a_family_writes_what_prometheus_client_writes(kind):
    registry, theirs, ours = _pair(kind, ["zeta", "alpha", "mid"])  # labels sorted by name in the text
    values = [0.0, -1.5, 1e-300, 12345678.9, 1e21, float("inf"), 3]
    for i, value in enumerate(HOSTILE):
        labels = (value, HOSTILE[-1 - i], str(i))
        amount = abs(values[i % len(values)]) if kind == "counter" else values[i % len(values)]
        if kind == "counter":
            theirs.labels(*labels).inc(amount)
            ours.inc(labels, amount)
        else:
            theirs.labels(*labels).set(amount)
            ours.set(labels, amount)
    if kind == "gauge":
        theirs.labels("a", "b", "c").set(float("nan"))
        ours.set(("a", "b", "c"), float("nan"))
    assert _created_free(ours.text()) == _created_free(generate_latest(registry))
    parsed = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(ours.text().decode())
              for s in f.samples if not s.name.endswith("_created")}
    assert parsed[(("alpha", "\x00\x7f"), ("mid", "0"), ("zeta", "plain"))] == 0.0
    assert parsed[(("alpha", 'a"quote'), ("mid", str(len(HOSTILE) - 2)), ("zeta", "}{,="))] is not None


def test_an_empty_family_and_a_removed_series():
    registry, theirs, ours = _pair("gauge", ["a"])
    assert ours.text() == generate_latest(registry)
    ours.set(("v",), 1.0)
    ours.set(("w",), 2.0)
    ours.remove(("v",))
    ours.remove(("nope",))
    theirs.labels("w").set(2.0)
    assert ours.text() == generate_latest(registry)
    assert ours.get(("w",)) == 2.0 and len(ours) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                          st.floats(allow_nan=False)), max_size=8))
def test_any_text_and_value_renders_as_prometheus_client_renders_it(series):
    registry, theirs, ours = _pair("gauge", ["feature"])
    for value, number in series:
        theirs.labels(value).set(number)
        ours.set((value,), number)
    assert ours.text() == generate_latest(registry)


def test_a_lone_surrogate_is_written_as_a_replacement_character():
    registry, theirs, ours = _pair("gauge", ["feature"])
    theirs.labels("bad\ud800x").set(1)
    with pytest.raises(UnicodeEncodeError):  # prometheus_client fails the whole scrape
        generate_latest(registry)
    ours.set(("bad\ud800x",), 1)
    ours.set(("\udfff",), 2)
    (family,) = text_string_to_metric_families(ours.text().decode("utf-8"))
    assert sorted(s.labels["feature"] for s in family.samples) == ["bad\ufffdx", "\ufffd"]


def _batches(rounds: int = 2, models: int = 3, features: int = 7):
    for r in range(rounds):
        for m in range(models):
            result = BatchResult()
            for f in range(features):
                numeric = f % 3 != 2
                stats = DRIFT_STATISTICS[:7] if numeric else DRIFT_STATISTICS[7:]
                feature = f'f"{f}\\' if f == 0 else f"f{f}"
                result.summaries.append({"type": "window_summary", "model": f"m{m}", "model_version": "v1",
                                         "feature": feature, "source": "features",
                                         "missing_ratio": ((r + 1) * (f + 1) * (m + 1)) % 11 / 10,
                                         "drift": {s: float((i + 1) * (f + 2) * (r + 1) % 13) - 4 for i, s in enumerate(stats)}})
                if f % 2:
                    result.quality[(f"m{m}", feature, "type_change")] += f
            for f, status in ((1, "firing"), (2, "firing"), (3, "firing" if r == 0 else "resolved")):
                result.alerts.append({"model": f"m{m}", "model_version": "v1", "feature": f"f{f}", "source": "features",
                                      "kind": "data_drift", "detector": "psi", "status": status})
            result.alerts.append({"model": f"m{m}", "feature": "f1", "source": "features", "kind": "data_drift",
                                  "detector": "psi", "status": "firing", "reminder": True})
            yield result


def _filled(series: str) -> WorkerMetrics:
    metrics = WorkerMetrics(process_metrics=False, series=series)  # type: ignore[arg-type]
    for result in _batches():
        metrics.record_batch(result, models=3, features=21)
    return metrics


def _samples(text: bytes) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text.decode("utf-8")):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_the_per_feature_text_holds_what_the_registry_collects():
    metrics = _filled("feature")
    assert _samples(metrics.exposition()) == _samples(generate_latest(metrics.registry))
    get = metrics.registry.get_sample_value
    assert get("driftline_feature_missing_ratio", {"model": "m0", "model_version": "v1", "feature": 'f"0\\'}) is not None
    assert get("driftline_alerts_firing", {"model": "m1", "feature": "f3", "kind": "data_drift", "detector": "psi"}) == 0
    assert get("driftline_alerts_total", {"model": "m1", "feature": "f1", "kind": "data_drift", "detector": "psi",
                                          "status": "firing"}) == 2  # reminders are not counted


def test_the_model_mode_has_no_feature_series_and_agrees_with_the_per_feature_one():
    per_feature, per_model = _samples(_filled("feature").exposition()), _samples(_filled("model").exposition())
    assert not any("feature" in labels for rows in per_model.values() for labels, _ in rows)
    assert "driftline_feature_drift_statistic" not in per_model and "driftline_feature_missing_ratio" not in per_model

    def grouped(name, keys, how):
        out: dict[tuple, list] = {}
        for labels, value in per_feature[name]:
            out.setdefault(tuple(labels[k] for k in keys), []).append(value)
        return {k: how(v) for k, v in out.items()}

    def of(name, keys):
        return {tuple(labels[k] for k in keys): value for labels, value in per_model[name]}

    keys = ("model", "model_version", "statistic")
    assert of("driftline_model_drift_statistic_max", keys) == grouped("driftline_feature_drift_statistic", keys, max)
    assert of("driftline_model_drift_statistic_min", keys) == grouped("driftline_feature_drift_statistic", keys, min)
    assert of("driftline_model_missing_ratio_max", keys[:2]) == grouped("driftline_feature_missing_ratio", keys[:2], max)
    assert of("driftline_model_window_features", keys[:2]) == grouped("driftline_feature_missing_ratio", keys[:2], len)
    # counts per model: the same answer as sum by (the other labels) of the per-feature series
    for name, keys in (("driftline_data_quality_findings_total", ("model", "check")),
                       ("driftline_alerts_total", ("model", "kind", "detector", "status")),
                       ("driftline_alerts_firing", ("model", "kind", "detector"))):
        assert of(name, keys) == grouped(name, keys, sum), name
    assert of("driftline_alerts_firing", ("model", "kind", "detector"))[("m0", "data_drift", "psi")] == 2


def test_the_setting_and_the_endpoint():
    assert load_settings().metrics_series == "feature"
    assert load_settings(metrics_series="model").metrics_series == "model"
    with pytest.raises(Exception):
        load_settings(metrics_series="features")
    with pytest.raises(ValueError):
        WorkerMetrics(series="features")  # type: ignore[arg-type]
    from driftline.transport.worker import Worker  # builds its metrics from the setting, touches no Kafka yet

    assert Worker(load_settings(metrics_series="model", metrics_port=0)).metrics.series == "model"
    metrics = _filled("feature")
    with MetricsServer(metrics.exposition_parts, "127.0.0.1", 0, lambda: (True, "ok")) as server:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            body = response.read()
    assert body == metrics.exposition()
    assert len(_samples(body)["driftline_feature_drift_statistic"]) == 3 * (5 * 7 + 2 * 4)


@settings(max_examples=200, deadline=None)
@given(st.floats() | st.sampled_from([0.0, -0.0, 1e6, 1234567.0, 12345678.5, 1e16, 1e22, -1e22, 5e-324]))
def test_values_are_formatted_as_prometheus_client_formats_them(value):
    from prometheus_client.utils import floatToGoString

    from driftline.observability.exposition import format_value

    assert format_value(value) == floatToGoString(value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b\\", 'c"']), st.floats(min_value=0, max_value=1e300)), max_size=12))
def test_counters_add_up_as_prometheus_client_adds_them(increments):
    registry, theirs, ours = _pair("counter", ["check"])
    for label, amount in increments:
        theirs.labels(label).inc(amount)
        ours.inc((label,), amount)
    assert _created_free(ours.text()) == _created_free(generate_latest(registry))
    with pytest.raises(ValueError):
        ours.inc(("a",), -1)

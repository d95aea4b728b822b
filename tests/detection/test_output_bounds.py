"""The largest alert and window summary any input can cause, with the default and the largest name limits.

Worst case: every name at its limit and made of control characters, which
JSON writes as six bytes each (``\\u0001``): model and version 256 characters,
the feature ``max_name_chars``, and the 20 categories a summary lists
``max_category_chars`` each.  A summary is then about
20 × 6 × max_category_chars + 6 × (512 + max_name_chars) bytes plus a
kilobyte of numbers: 36 KB with the defaults (256), 132 KB at the largest
allowed limits (1,024), far below the producer's 1 MB (measured: 36,075 and
132,843 bytes).  An alert names model, version and feature in fields and in
its summary sentence, plus one category: measured 11,602 and 25,426 bytes.
"""

from __future__ import annotations

import orjson
import pytest

from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline, PipelineSettings
from driftline.detection.published import alert_record, summary_record
from driftline.detection.settings import MonitorSettings

T0 = 1_700_000_000_000


def _worst(limit: int) -> tuple[int, int]:
    monitor = MonitorSettings.calibrated(false_alarm_rate=1e-2, warmup=200, window_events=200, window_seconds=None,
                                         max_categories=100, max_name_chars=limit, max_category_chars=limit)
    pipeline = Pipeline(PipelineSettings(monitor=monitor, cooldown_seconds=0.0, resolve_after_seconds=0.001))
    model, version, feature = "\x01" * 256, "\x02" * 256, "\x03" * limit

    def category(group: int, i: int) -> str:
        return chr(0x10 + group) + chr(0x05 + i) + "\x04" * (limit - 2)  # distinct, at the limit, kept as sent

    records = []
    for n in range(600):
        value: object = category(0, n % 25 if n < 400 else n % 5)  # the mix changes after warm-up and a window
        if n % 50 == 49:
            value = 1.0  # a type change: one more alert naming the feature
        doc = {"model": model, "model_version": version, "timestamp": T0 + n * 1000, "features": {feature: value}}
        records.append(SourceRecord("in", 0, n, None, b"k", orjson.dumps(doc)))
    result = pipeline.process(records)
    summaries = [summary_record(s)[1] for s in result.summaries]
    alerts = [alert_record(a)[1] for a in result.alerts]
    assert any(len(orjson.loads(s)["categories"]) == 20 for s in summaries)
    assert {orjson.loads(a)["status"] for a in alerts} == {"firing", "resolved"}
    found = {d for a in alerts for d in orjson.loads(a)["detectors"]}
    assert "category_cusum" in found  # the mix change, found (its alerts name the long category)
    return max(map(len, summaries)), max(map(len, alerts))


@pytest.mark.parametrize("limit, summary_bound, alert_bound", [(256, 40_000, 20_000), (1024, 140_000, 50_000)])
def test_the_largest_summary_and_alert_stay_far_below_a_megabyte(limit, summary_bound, alert_bound):
    summary, alert = _worst(limit)
    assert summary < summary_bound and alert < alert_bound, (summary, alert)

"""Every Prometheus metric of a worker, defined once, against an injectable registry.

Label values are bounded: models by ``max_models`` (models that only send
labels included), features by ``max_features_per_model``, reasons and checks
by fixed lists, partitions by the topic layout.  What a cap drops is counted
in ``driftline_overflow_total``.  A ``feature`` label is the feature's alert-key
component (:func:`driftline.detection.keys.feature_part`): at most
``max_name_chars`` characters (more only where ``%`` / ``/`` are encoded), and
a feature and an output of the same name have different labels.

``series`` (the ``metrics_series`` setting) chooses what is exported per feature:

* ``"feature"`` (default): one series per feature (drift statistics, missing
  ratio, data-quality findings, alerts).
* ``"model"``: no series with a ``feature`` label.  Per model version and
  statistic the largest and smallest value over its features
  (``driftline_model_drift_statistic_max`` / ``_min``), the largest missing
  ratio, how many features have a window; data-quality findings and alerts
  counted per model (the same names without the ``feature`` label, so
  ``sum by`` any other labels gives the same answer in both modes;
  ``driftline_alerts_firing`` is then the number of alert keys firing).

The metrics with a ``feature`` label in the default mode are
:class:`~driftline.observability.exposition.Family` objects, which keep their
exposition text ready, so that :meth:`WorkerMetrics.exposition_parts` (what
``/metrics`` sends) answers a scrape at the caps in a fraction of the time
prometheus_client's ``generate_latest`` takes.
"""

from __future__ import annotations

import math
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from driftline.detection.keys import feature_part
from driftline.detection.pipeline import BatchResult
from driftline.observability.exposition import Family

__all__ = ["WorkerMetrics", "DRIFT_STATISTICS", "SERIES_MODES"]

#: Window-summary drift statistics exported as gauges.
DRIFT_STATISTICS = ("page_hinkley", "page_hinkley_spread", "mean_shift_sd", "spread_ratio",
                    "ks", "ks_p_value", "wasserstein_sd", "chi_square", "p_value", "psi", "jensen_shannon")

#: Values of ``metrics_series``.
SERIES_MODES = ("feature", "model")


class _Registries:
    """Registers each metric in the registry given to WorkerMetrics and in its own one (for :meth:`exposition`)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def register(self, collector: Collector) -> None:
        for registry in self.registries:
            registry.register(collector)


class WorkerMetrics:
    """The metrics of one worker process."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True,
                 series: Literal["feature", "model"] = "feature") -> None:
        if series not in SERIES_MODES:
            raise ValueError(f"series must be one of {SERIES_MODES}, not {series!r}")
        self.series = series
        self.registry = registry if registry is not None else CollectorRegistry()
        self._own = CollectorRegistry()  # the same collectors but the per-feature families: see exposition()
        r = _Registries(self.registry, self._own)
        self._families: list[Family] = []
        if process_metrics:
            ProcessCollector(registry=r)  # type: ignore[arg-type]  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self.events = Counter("driftline_events_total", "Inference events decoded and monitored.", ["model", "topic"], registry=r)
        self.records = Counter("driftline_records_total", "Records consumed, valid or not.", ["topic"], registry=r)
        self.dead_letters = Counter("driftline_dead_letters_total", "Records sent to the dead-letter topic.", ["reason", "topic"], registry=r)
        per_feature = series == "feature"
        self._firing: dict[tuple[str, str, str, str], bool] = {}  # model mode: alert key -> firing
        self._firing_count: dict[tuple[str, str, str], int] = {}  # model mode: (model, kind, detector) -> keys firing
        if per_feature:
            self.data_quality = self._family("driftline_data_quality_findings_total", "Data-quality findings.", "counter", ["model", "feature", "check"])
            self.alerts = self._family("driftline_alerts_total", "Alert events published.", "counter", ["model", "feature", "kind", "detector", "status"])
            self.alerts_firing = self._family("driftline_alerts_firing", "Alert keys currently firing.", "gauge", ["model", "feature", "kind", "detector"])
        else:
            self.data_quality = self._family("driftline_data_quality_findings_total", "Data-quality findings (all features of the model).", "counter", ["model", "check"])
            self.alerts = self._family("driftline_alerts_total", "Alert events published (all features of the model).", "counter", ["model", "kind", "detector", "status"])
            self.alerts_firing = self._family("driftline_alerts_firing", "Alert keys currently firing (all features of the model).", "gauge", ["model", "kind", "detector"])
        self.incident_features = Gauge("driftline_incident_features", "Open feature incidents of each model incident "
                                       "(absent once all of them resolved).", ["model", "model_version", "incident_id"],
                                       registry=r)
        self._incidents: set[tuple[str, str, str]] = set()
        self.suppressed = Counter("driftline_alerts_suppressed_total", "Findings not published because their key was in cooldown.", registry=r)
        self.summaries = Counter("driftline_window_summaries_total", "Window summaries published.", ["model"], registry=r)
        self.drift_statistic: Family | None = None
        self.missing_ratio: Family | None = None
        if per_feature:
            self.drift_statistic = self._family("driftline_feature_drift_statistic", "Latest window's drift statistic per feature.",
                                                "gauge", ["model", "model_version", "feature", "statistic"])
            self.missing_ratio = self._family("driftline_feature_missing_ratio", "Latest window's missing ratio per feature.",
                                              "gauge", ["model", "model_version", "feature"])
        else:
            # model version -> statistic -> feature -> latest value, for the aggregates
            self._drift: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
            self._missing: dict[tuple[str, str], dict[str, float]] = {}
            self.drift_max = Gauge("driftline_model_drift_statistic_max", "Largest latest-window drift statistic over the "
                                   "features of a model version.", ["model", "model_version", "statistic"], registry=r)
            self.drift_min = Gauge("driftline_model_drift_statistic_min", "Smallest latest-window drift statistic over the "
                                   "features of a model version.", ["model", "model_version", "statistic"], registry=r)
            self.missing_max = Gauge("driftline_model_missing_ratio_max", "Largest latest-window missing ratio over the "
                                     "features of a model version.", ["model", "model_version"], registry=r)
            self.window_features = Gauge("driftline_model_window_features", "Features of a model version with a window "
                                         "summary (what the _max / _min gauges are taken over).", ["model", "model_version"], registry=r)
        self.batch_latency = Histogram("driftline_batch_duration_seconds", "Time to process and deliver one consumed batch.",
                                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r)
        self.batch_size = Histogram("driftline_batch_records", "Records per consumed batch.",
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000), registry=r)
        self.consumer_lag = Gauge("driftline_consumer_lag_records", "High watermark minus next offset to process.", ["topic", "partition"], registry=r)
        self.event_time_lag = Gauge("driftline_event_time_lag_seconds", "Wall clock minus newest event time processed.", ["topic", "partition"], registry=r)
        self.assigned_partitions = Gauge("driftline_assigned_partitions", "Input partitions assigned to this worker.", registry=r)
        self.models = Gauge("driftline_monitored_models", "Model versions monitored by this worker.", registry=r)
        self.features = Gauge("driftline_monitored_features", "Features monitored by this worker (over all partitions).", registry=r)
        self.overflow = Counter("driftline_overflow_total", "Events or features dropped by a cap.", ["what"], registry=r)
        self.reference = Gauge("driftline_reference_info", "1 for the reference each model version is compared with "
                               "(profile@<id>; absent = warm-up).", ["model", "model_version", "reference"], registry=r)
        self.reference_updates = Counter("driftline_reference_updates_total", "Records read from the references topic, "
                                         "by outcome (applied, withdrawn, rejected).", ["outcome"], registry=r)
        self._references: dict[tuple[str, str], str] = {}
        self.labels = Counter("driftline_labels_total", "Labels by outcome (joined, early, late, duplicate, unmatched), "
                              "and inferences that expired unlabeled or were evicted.", ["model", "outcome"], registry=r)
        self.output_violations = Counter("driftline_output_violations_total", "Outputs that broke a rule.",
                                         ["model", "rule"], registry=r)
        self.performance = Gauge("driftline_model_performance", "Latest window's performance per model version "
                                 "(accuracy, precision, recall, f1, log_loss, brier, mae, rmse, bias, estimated_accuracy, "
                                 "label_coverage).", ["model", "model_version", "metric"], registry=r)
        self.version_comparison = Gauge("driftline_version_comparison", "Latest window's champion / challenger "
                                        "comparison (disagreement_rate, mean_difference_sd, ks).",
                                        ["model", "champion", "challenger", "statistic"], registry=r)
        self.checkpoints = Counter("driftline_checkpoints_total", "Partition state checkpoints written, by trigger "
                                   "(interval, revoke, shutdown, isolation).", ["trigger"], registry=r)
        self.checkpoint_bytes = Histogram("driftline_checkpoint_bytes", "Size of one partition's checkpoint.",
                                          buckets=(1e3, 1e4, 1e5, 1e6, 1e7, 1e8), registry=r)
        self.restores = Counter("driftline_state_restores_total", "Partitions taken over at assignment, by outcome "
                                "(restored, kept, none, rejected).", ["outcome"], registry=r)
        self.restore_seconds = Histogram("driftline_state_restore_seconds", "Time to restore the state of newly assigned "
                                         "partitions.", buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.replayed_records = Counter("driftline_replayed_records_total", "Records re-read after a restore to rebuild "
                                        "state; their outputs had been published before.", registry=r)
        self.transactions = Counter("driftline_transactions_total", "Kafka transactions, by outcome (committed, aborted).",
                                    ["outcome"], registry=r)
        self.delivery_failures = Counter("driftline_delivery_failures_total", "Output records Kafka failed to deliver.", ["topic"], registry=r)
        self.oversized_outputs = Counter("driftline_oversized_outputs_total", "Output records larger than Kafka takes, "
                                         "replaced by an oversized_output record on the same topic.", ["topic"], registry=r)

    def _family(self, name: str, documentation: str, kind: str, labelnames: list[str]) -> Family:
        family = Family(name, documentation, kind, labelnames)
        self.registry.register(family)
        self._families.append(family)
        return family

    def exposition_parts(self) -> list[bytes]:
        """The ``/metrics`` text of every metric defined here, in parts to be sent one after the other (no copy of the
        per-feature texts, which the families keep ready)."""
        return [generate_latest(self._own), *(family.text() for family in self._families)]

    def exposition(self) -> bytes:
        """The ``/metrics`` text of every metric defined here (what ``generate_latest(self.registry)`` gives, faster)."""
        return b"".join(self.exposition_parts())

    def reference_in_use(self, model: str, model_version: str, reference: str | None) -> None:
        """Point ``driftline_reference_info`` of a model version at its reference (None: warm-up)."""
        old = self._references.pop((model, model_version), None)
        if old is not None:
            self.reference.remove(model, model_version, old)
        if reference is not None:
            self._references[(model, model_version)] = reference
            self.reference.labels(model, model_version, reference).set(1)

    def _performance(self, s: dict[str, object]) -> None:
        model, version = str(s["model"]), str(s["model_version"])
        values = dict(s.get("window_performance") or {})  # type: ignore[call-overload]
        values["estimated_accuracy"] = s.get("estimated_accuracy")
        values["label_coverage"] = s.get("label_coverage")
        for name, value in values.items():
            if name != "labeled" and isinstance(value, (int, float)) and math.isfinite(value):
                self.performance.labels(model, version, name).set(value)

    def record_incidents(self, open_incidents: dict[tuple[str, str, str], int]) -> None:
        """Set ``driftline_incident_features`` to the open model incidents (model, version, id) -> features."""
        for gone in self._incidents - set(open_incidents):
            self.incident_features.remove(*gone)
        for labels, n in open_incidents.items():
            self.incident_features.labels(*labels).set(n)
        self._incidents = set(open_incidents)

    def _aggregate(self, model: str, version: str) -> None:
        """Set the per-model gauges of one model version from the latest values of its features (model mode)."""
        features: set[str] = set(self._missing.get((model, version), ()))
        for name, values in self._drift.get((model, version), {}).items():
            features.update(values)
            self.drift_max.labels(model, version, name).set(max(values.values()))
            self.drift_min.labels(model, version, name).set(min(values.values()))
        missing = self._missing.get((model, version))
        if missing:
            self.missing_max.labels(model, version).set(max(missing.values()))
        self.window_features.labels(model, version).set(len(features))

    def record_batch(self, result: BatchResult, *, models: int, features: int,
                     incidents: dict[tuple[str, str, str], int] | None = None) -> None:
        """Update counters and gauges from one processed batch (and the open incidents after it)."""
        if incidents is not None:
            self.record_incidents(incidents)
        for (model, topic), n in result.events.items():
            self.events.labels(model, topic).inc(n)
        for dl in result.dead_letters:
            self.dead_letters.labels(dl.reason, dl.record.topic).inc()
        per_feature = self.series == "feature"
        for (model, feature, check), n in result.quality.items():
            self.data_quality.inc((model, feature, check) if per_feature else (model, check), n)
        for alert in result.alerts:
            if alert.get("reminder"):
                continue
            feature = feature_part(str(alert.get("source")), str(alert["feature"]))
            model, kind, detector, status = str(alert["model"]), str(alert["kind"]), str(alert["detector"]), str(alert["status"])
            if per_feature:
                self.alerts.inc((model, feature, kind, detector, status))
                self.alerts_firing.set((model, feature, kind, detector), 1.0 if status == "firing" else 0.0)
            else:
                self.alerts.inc((model, kind, detector, status))
                firing, key, group = status == "firing", (model, feature, kind, detector), (model, kind, detector)
                if self._firing.get(key, False) != firing:
                    self._firing[key] = firing
                    self._firing_count[group] = self._firing_count.get(group, 0) + (1 if firing else -1)
                self.alerts_firing.set(group, self._firing_count.get(group, 0))
        if result.suppressed_findings:
            self.suppressed.inc(result.suppressed_findings)
        for (model, outcome), n in result.labels.items():
            self.labels.labels(model, outcome).inc(n)
        for (model, rule), n in result.violations.items():
            self.output_violations.labels(model, rule).inc(n)
        touched: set[tuple[str, str]] = set()
        for s in result.summaries:
            kind = s.get("type")
            self.summaries.labels(str(s["model"])).inc()
            if kind == "performance_summary":
                self._performance(s)
                continue
            if kind == "version_comparison":
                for name in ("disagreement_rate", "mean_difference_sd", "ks"):
                    value = s.get(name)
                    if isinstance(value, (int, float)):
                        self.version_comparison.labels(str(s["model"]), str(s["champion"]), str(s["challenger"]), name).set(value)
                continue
            model, version = str(s["model"]), str(s["model_version"])
            feature = feature_part(str(s.get("source")), str(s["feature"]))
            ratio = s.get("missing_ratio")
            drift = s.get("drift") or {}
            if not isinstance(drift, dict):
                drift = {}
            if per_feature:
                assert self.missing_ratio is not None and self.drift_statistic is not None
                if isinstance(ratio, (int, float)):
                    self.missing_ratio.set((model, version, feature), ratio)
                for name in DRIFT_STATISTICS:
                    value = drift.get(name)
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        self.drift_statistic.set((model, version, feature, name), value)
                continue
            touched.add((model, version))
            if isinstance(ratio, (int, float)):
                self._missing.setdefault((model, version), {})[feature] = float(ratio)
            by_statistic = self._drift.setdefault((model, version), {})
            for name in DRIFT_STATISTICS:
                value = drift.get(name)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    by_statistic.setdefault(name, {})[feature] = float(value)
        for model, version in touched:
            self._aggregate(model, version)
        for what, n in result.overflow.items():
            self.overflow.labels(what).inc(n)
        self.models.set(models)
        self.features.set(features)

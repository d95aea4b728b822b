"""What a report shows, assembled from window summaries, alerts and reference profiles.

No I/O: the records come in as dicts (as on the metrics and alerts topics, or
in ``replay --summaries-out`` / ``--alerts-out`` files), the profiles as
:class:`~driftline.reference.profile.ReferenceProfile`, and out comes a
:class:`ReportData` that :func:`driftline.report.html.render` turns into a page.

Per model version and feature it collects:

* the windowed drift statistic that alerts (the ``numeric_window_test`` /
  ``categorical_window_test`` settings), per window, with its threshold and
  whether the window met the alert condition (statistic over the threshold
  and significant at the window's ``alpha``), plus a second series (mean shift
  in reference sd for numeric features, the new-category share for
  categorical ones) and the missing ratio;
* the alerts about the feature;
* the reference distribution (the supplied profile the summaries name, else
  the windows of the warm-up) and the current one (the latest window of each
  partition);
* when the feature *moved*: its first firing alert or its first window over
  the threshold, whichever came first.  Features are ordered by it.

Per model version with labels (``performance_summary`` records), its
:class:`QualityData`: accuracy (classifiers) or MAE (regressors) per window,
label coverage per window, and the concept-drift alerts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from driftline.reference.profile import CATEGORICAL, NUMERIC, ReferenceProfile
from driftline.stats.divergence import chi_square_critical

__all__ = ["WindowTests", "Point", "Distribution", "FeatureData", "QualityData", "VersionData", "ReportData", "assemble",
           "QUANTILE_KEYS", "parse_time", "record_x"]

QUANTILE_KEYS = ("p01", "p05", "p25", "p50", "p75", "p95", "p99")
_RANKS = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
#: Detectors whose alerts are drawn on the missing-ratio chart (the rest go on the statistic chart).
MISSING_DETECTORS = ("missing_rate", "vanished_feature")
STAT_NAMES = {"psi": "PSI", "ks": "KS", "wasserstein_sd": "Wasserstein (ref. sd)", "chi_square": "chi-square",
              "jensen_shannon": "Jensen-Shannon (bits)", "mean_shift_sd": "mean shift (ref. sd)",
              "new_category_ratio": "new-category share"}


@dataclass(frozen=True, slots=True)
class WindowTests:
    """Which windowed statistic alerts and its thresholds: the worker's settings of the same names."""

    numeric_test: str = "psi"
    categorical_test: str = "chi_square"
    thresholds: Mapping[str, float] = field(default_factory=lambda: {
        "psi": 0.2, "ks": 0.1, "wasserstein_sd": 0.1, "jensen_shannon": 0.01})

    def statistic(self, kind: str) -> str:
        """The statistic drawn for a feature type (``psi`` when its test is ``off``)."""
        test = self.numeric_test if kind == NUMERIC else self.categorical_test
        return "psi" if test == "off" else test


@dataclass(frozen=True, slots=True)
class Point:
    """One window's value; ``x`` is its last event time in epoch ms (or its last offset, see ``ReportData``)."""

    x: float
    series: str
    value: float
    threshold: float | None = None
    over: bool = False


@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution to draw: quantiles and mean (numeric) or category counts (categorical)."""

    label: str
    count: int
    quantiles: dict[str, float] | None = None
    mean: float | None = None
    categories: dict[str, float] | None = None
    #: how it was obtained, for the reader
    note: str = ""


@dataclass(slots=True)
class FeatureData:
    """One feature (or model output) of one model version: its series, alerts, distributions and first signal."""

    name: str
    source: str
    kind: str
    reference: str
    statistic: str
    points: list[Point] = field(default_factory=list)
    secondary: str = ""
    secondary_points: list[Point] = field(default_factory=list)
    missing_points: list[Point] = field(default_factory=list)
    reference_missing_ratio: float | None = None
    alerts: list[dict[str, object]] = field(default_factory=list)
    reference_distribution: Distribution | None = None
    current_distribution: Distribution | None = None
    windows: int = 0
    first_alert: dict[str, object] | None = None
    first_alert_x: float | None = None
    first_over: Point | None = None

    @property
    def moved_at(self) -> float | None:
        """When the feature first moved: its first firing alert or first window over the threshold."""
        times = [t for t in (self.first_alert_x, self.first_over.x if self.first_over else None) if t is not None]
        return min(times) if times else None

    @property
    def max_statistic(self) -> float | None:
        return max((p.value for p in self.points), default=None)

    @property
    def firing(self) -> int:
        return sum(1 for a in self.alerts if a.get("status") == "firing")


@dataclass(slots=True)
class QualityData:
    """Model quality of one version, from its ``performance_summary`` records (one per window and partition)."""

    task: str
    #: ``accuracy`` (classification) or ``mae`` (regression)
    metric: str
    #: the metric per window (series: ``topic/partition``)
    points: list[Point] = field(default_factory=list)
    #: labels joined in the window / inferences of the window (a label a window late counts in the next one)
    coverage_points: list[Point] = field(default_factory=list)
    labeled: int = 0
    inferences: int = 0
    concept_alerts: list[dict[str, object]] = field(default_factory=list)

    @property
    def coverage(self) -> float | None:
        return self.labeled / self.inferences if self.inferences else None

    @property
    def latest(self) -> float | None:
        return self.points[-1].value if self.points else None


@dataclass(slots=True)
class VersionData:
    """One model version: its features in report order, counts, references and alerts."""

    model: str
    model_version: str
    #: features in report order: those that moved (first first), then the others by name
    features: list[FeatureData]
    references: list[str]
    #: the references the summaries name (``profile@<id>``) whose profile was supplied to the report
    profiles_supplied: list[str]
    x_range: tuple[float, float]
    events: int
    windows: int
    partitions: list[str]
    alerts: list[dict[str, object]]
    #: alerts about features that have no window summary (e.g. labels and outputs: concept drift)
    other_alerts: list[dict[str, object]]
    #: accuracy or MAE and label coverage per window, and the concept-drift alerts (None: no labels)
    quality: QualityData | None = None

    @property
    def moved(self) -> list[FeatureData]:
        return [f for f in self.features if f.moved_at is not None]


@dataclass(slots=True)
class ReportData:
    """Everything the page shows about one model."""

    model: str
    versions: list[VersionData]
    source: str
    generated_at: str
    tests: WindowTests
    #: x is event time (epoch ms); False when some window had no event time: x is then the window's last offset
    time_axis: bool = True
    #: model versions in the input that were left out by the model_version filter
    other_versions: list[str] = field(default_factory=list)


def parse_time(text: object) -> float | None:
    """RFC 3339 (as driftline writes it) to epoch ms; None for anything else.

    >>> parse_time("2025-11-26T10:02:59.950Z")
    1764151379950.0
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000.0
    except ValueError:
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@lru_cache(maxsize=4096)
def _critical(alpha: float, df: int) -> float:
    return chi_square_critical(alpha, df)


def _window(record: Mapping[str, object]) -> Mapping[str, object]:
    window = record.get("window")
    return window if isinstance(window, dict) else {}


def _series(window: Mapping[str, object]) -> str:
    return f"{window.get('topic')}/{window.get('partition')}"


def _statistic_point(summary: Mapping[str, object], kind: str, statistic: str, tests: WindowTests, x: float,
                     series: str) -> Point | None:
    """The window's alerting statistic, its threshold and the alert condition, as the monitor judges it."""
    drift = summary.get("drift")
    if not isinstance(drift, dict):
        return None
    value = _number(drift.get(statistic))
    if value is None:
        return None
    alpha = _number(summary.get("alpha"))
    active = (tests.numeric_test if kind == NUMERIC else tests.categorical_test) != "off"
    if kind == NUMERIC:
        threshold = tests.thresholds.get(statistic)
        p_value = _number(drift.get("ks_p_value"))
        over = (active and threshold is not None and value > threshold
                and p_value is not None and alpha is not None and p_value < alpha)
        return Point(x, series, value, threshold, over)
    p_value = _number(drift.get("p_value"))
    df = drift.get("df")
    significant = (p_value is not None and alpha is not None and p_value < alpha
                   and isinstance(df, int) and df > 0)
    if statistic == "chi_square":
        threshold = _critical(alpha, df) if alpha is not None and 0 < alpha < 1 and isinstance(df, int) and df > 0 else None
        return Point(x, series, value, threshold, active and significant)
    threshold = tests.thresholds.get(statistic)
    return Point(x, series, value, threshold, active and significant and threshold is not None and value > threshold)


def _weighted_quantiles(summaries: Sequence[Mapping[str, object]]) -> tuple[dict[str, float] | None, float | None, int]:
    """Count-weighted average of the windows' quantiles and means (exact for one window)."""
    total = 0
    sums = dict.fromkeys(QUANTILE_KEYS, 0.0)
    mean_sum = 0.0
    for s in summaries:
        q = s.get("quantiles")
        n = s.get("count")
        if not isinstance(q, dict) or not isinstance(n, int) or n <= 0:
            continue
        values = [_number(q.get(k)) for k in QUANTILE_KEYS]
        if any(v is None for v in values):
            continue
        total += n
        for k, v in zip(QUANTILE_KEYS, values):
            sums[k] += n * v  # type: ignore[operator]
        mean_sum += n * (_number(s.get("mean")) or 0.0)
    if not total:
        return None, None, 0
    return {k: v / total for k, v in sums.items()}, mean_sum / total, total


def _summed_categories(summaries: Sequence[Mapping[str, object]]) -> tuple[dict[str, float] | None, int]:
    counts: dict[str, float] = defaultdict(float)
    for s in summaries:
        cats = s.get("categories")
        if isinstance(cats, dict):
            for name, n in cats.items():
                if _number(n) is not None:
                    counts[str(name)] += float(n)  # type: ignore[arg-type]
    total = int(sum(counts.values()))
    return (dict(counts), total) if total else (None, 0)


def _from_windows(summaries: Sequence[Mapping[str, object]], kind: str, label: str, note: str) -> Distribution | None:
    if kind == NUMERIC:
        quantiles, mean, n = _weighted_quantiles(summaries)
        return Distribution(label, n, quantiles=quantiles, mean=mean, note=note) if quantiles else None
    if kind == CATEGORICAL:
        cats, n = _summed_categories(summaries)
        return Distribution(label, n, categories=cats, note=note) if cats else None
    return None


def _from_profile(profile: ReferenceProfile, source: str, name: str, kind: str) -> Distribution | None:
    entry = profile.features.get((source, name))
    if entry is None or entry.kind != kind:
        return None
    label = profile.name
    note = f"{profile.name} ({entry.count:,} values)"
    if kind == NUMERIC:
        if entry.sketch is None or entry.sketch.is_empty():
            return None
        values = entry.sketch.get_quantiles(list(_RANKS), True)
        return Distribution(label, entry.count, quantiles=dict(zip(QUANTILE_KEYS, map(float, values))),
                            mean=entry.moments.mean if entry.moments.n else None, note=note)
    return Distribution(label, entry.count, categories={k: float(v) for k, v in (entry.categories or {}).items()},
                        note=note)


def _warmup_windows(typed: Sequence[Mapping[str, object]]) -> list[Mapping[str, object]]:
    """Per partition, the windows up to and including the one in which the warm-up reference was complete."""
    done: set[str] = set()
    out = []
    for s in typed:
        series = _series(_window(s))
        if series in done:
            continue
        out.append(s)
        if s.get("warmed_up") is not False:
            done.add(series)
    return out


def _feature(name: str, source: str, summaries: list[tuple[float, Mapping[str, object]]],
             alerts: list[tuple[float, dict[str, object]]], profile: ReferenceProfile | None,
             tests: WindowTests) -> FeatureData:
    kinds = [str(s.get("feature_type")) for _, s in summaries if s.get("feature_type") in (NUMERIC, CATEGORICAL)]
    kind = kinds[-1] if kinds else "unknown"
    references = [str(s.get("reference")) for _, s in summaries if s.get("reference")]
    reference = references[-1] if references else "warmup"
    statistic = tests.statistic(kind)
    secondary = "mean_shift_sd" if kind == NUMERIC else "new_category_ratio" if kind == CATEGORICAL else ""
    feature = FeatureData(name, source, kind, reference, statistic, secondary=secondary, windows=len(summaries))
    for x, s in summaries:
        series = _series(_window(s))
        if s.get("feature_type") == kind:
            point = _statistic_point(s, kind, statistic, tests, x, series)
            if point is not None:
                feature.points.append(point)
                if point.over and feature.first_over is None:
                    feature.first_over = point
            drift = s.get("drift") if isinstance(s.get("drift"), dict) else {}
            value = _number(drift.get(secondary)) if kind == NUMERIC else _number(s.get(secondary))  # type: ignore[union-attr]
            if value is not None:
                feature.secondary_points.append(Point(x, series, value))
        ratio = _number(s.get("missing_ratio"))
        if ratio is not None:
            feature.missing_points.append(Point(x, series, ratio))
    feature.alerts = [a for _, a in alerts]
    firing = [(x, a) for x, a in alerts if a.get("status") == "firing"]
    if firing:
        feature.first_alert_x, feature.first_alert = firing[0]

    # Reference: the supplied profile the summaries name; otherwise the warm-up windows.
    typed = [s for _, s in summaries if s.get("feature_type") == kind]
    used_profile = profile is not None and reference == profile.name
    if used_profile:
        assert profile is not None
        feature.reference_distribution = _from_profile(profile, source, name, kind)
        entry = profile.features.get((source, name))
        feature.reference_missing_ratio = entry.missing_ratio if entry is not None else None
    if feature.reference_distribution is None and typed:
        warmup = _warmup_windows(typed)
        missing_profile = reference.startswith("profile@") and not used_profile
        prefix = f"{reference} was not supplied (--reference-files); " if missing_profile else ""
        text = f"the {len(warmup)} windows up to the end of the warm-up" if len(warmup) > 1 else "the first window"
        feature.reference_distribution = _from_windows(warmup, kind, "warm-up", prefix + text)
        if not used_profile:
            records = sum(s["records"] for s in warmup if isinstance(s.get("records"), int))  # type: ignore[misc]
            missing = sum(s["missing"] for s in warmup if isinstance(s.get("missing"), int))  # type: ignore[misc]
            feature.reference_missing_ratio = missing / records if records else None
    # Current: the latest window of each partition.
    latest: dict[str, Mapping[str, object]] = {}
    for s in typed:
        latest[_series(_window(s))] = s
    if latest:
        windows = list(latest.values())
        note = "the latest window" + (f" of each of {len(windows)} partitions" if len(windows) > 1 else "")
        label = "latest window" if len(windows) == 1 else "latest windows"
        feature.current_distribution = _from_windows(windows, kind, label, note)
    return feature


def record_x(record: Mapping[str, object], time_axis: bool, *, alert: bool = False) -> float | None:
    """Where a summary (its window's last event) or an alert (its record's event time) sits on the x axis."""
    window = _window(record)
    if time_axis:
        t = parse_time(record.get("event_time")) if alert else None
        return t if t is not None else parse_time(window.get("last_event_time"))
    offset = window.get("last_offset")
    return float(offset) if isinstance(offset, (int, float)) and not isinstance(offset, bool) else None


def assemble(summaries: Iterable[Mapping[str, object]], alerts: Iterable[Mapping[str, object]], *, model: str,
             model_version: str | None = None, profiles: Sequence[ReferenceProfile] = (),
             tests: WindowTests = WindowTests(), source: str = "", generated_at: str = "") -> ReportData:
    """Everything the page shows about ``model`` (one section per model version).

    Records of other models, other record types and malformed records are ignored.
    """
    summaries = list(summaries)
    ours = [s for s in summaries if isinstance(s, dict) and s.get("type") == "window_summary"
            and s.get("model") == model and isinstance(s.get("feature"), str)]
    performance = [s for s in summaries if isinstance(s, dict) and s.get("type") == "performance_summary"
                   and s.get("model") == model and (model_version is None or s.get("model_version") == model_version)]
    all_versions = sorted({str(s.get("model_version")) for s in ours})
    if model_version is not None:
        ours = [s for s in ours if s.get("model_version") == model_version]
    our_alerts = [a for a in alerts if isinstance(a, dict) and a.get("model") == model
                  and (model_version is None or a.get("model_version") == model_version)]
    time_axis = all(parse_time(_window(s).get("last_event_time")) is not None for s in ours)
    report = ReportData(model, [], source, generated_at, tests, time_axis,
                        [v for v in all_versions if model_version is not None and v != model_version])
    by_version: dict[str, list[tuple[float, Mapping[str, object]]]] = defaultdict(list)
    for s in ours:
        x = record_x(s, time_axis)
        if x is not None:
            by_version[str(s.get("model_version"))].append((x, s))
    alerts_by_version: dict[str, list[tuple[float, dict[str, object]]]] = defaultdict(list)
    for a in our_alerts:
        x = record_x(a, time_axis, alert=True)
        if x is not None:
            alerts_by_version[str(a.get("model_version"))].append((x, dict(a)))
    profile_of = {(p.model, p.model_version): p for p in profiles}
    perf_by_version: dict[str, list[tuple[float, Mapping[str, object]]]] = defaultdict(list)
    for s in performance:
        x = record_x(s, time_axis)
        if x is not None:
            perf_by_version[str(s.get("model_version"))].append((x, s))
    for version in sorted(set(by_version) | set(alerts_by_version)):
        rows = sorted(by_version.get(version, []), key=lambda r: r[0])
        version_alerts = sorted(alerts_by_version.get(version, []), key=lambda r: r[0])
        data = _version(model, version, rows, version_alerts, profile_of.get((model, version)), tests, time_axis)
        perf = sorted(perf_by_version.get(version, []), key=lambda r: r[0])
        if perf:
            data.quality = _quality(perf, [a for _, a in version_alerts])
            xs = [x for x, _ in perf]
            data.x_range = (min(data.x_range[0], *xs) if rows or version_alerts else min(xs),
                            max(data.x_range[1], *xs) if rows or version_alerts else max(xs))
        report.versions.append(data)
    return report


def _quality(rows: list[tuple[float, Mapping[str, object]]], alerts: list[dict[str, object]]) -> QualityData:
    """A version's performance per window and partition, its label coverage and its concept-drift alerts."""
    tasks = {str(s.get("task")) for _, s in rows if s.get("task")}
    task = tasks.pop() if len(tasks) == 1 else ("mixed" if tasks else "unknown")
    metric = "mae" if task == "regression" else "accuracy"
    quality = QualityData(task, metric, concept_alerts=[a for a in alerts if a.get("kind") == "concept_drift"])
    for x, s in rows:
        # by partition number only: a window ends at an inference or at a label, on either topic
        partition = _window(s).get("partition")
        series = f"partition {partition}"
        perf = s.get("window_performance") if isinstance(s.get("window_performance"), dict) else {}
        labeled = perf.get("labeled") if type(perf.get("labeled")) is int else 0
        inferences = s.get("inferences") if type(s.get("inferences")) is int else 0
        quality.labeled += labeled
        quality.inferences += inferences
        value = _number(perf.get(metric))
        if value is not None and labeled > 0:
            quality.points.append(Point(x, series, value))
        if inferences > 0:
            quality.coverage_points.append(Point(x, series, labeled / inferences))
    return quality


def _version(model: str, version: str, rows: list[tuple[float, Mapping[str, object]]],
             alerts: list[tuple[float, dict[str, object]]], profile: ReferenceProfile | None, tests: WindowTests,
             time_axis: bool) -> VersionData:
    per_feature: dict[tuple[str, str], list[tuple[float, Mapping[str, object]]]] = defaultdict(list)
    window_records: dict[tuple[object, ...], int] = {}
    for x, s in rows:
        per_feature[(str(s.get("source", "features")), str(s["feature"]))].append((x, s))
        w = _window(s)
        key = (w.get("topic"), w.get("partition"), w.get("first_offset"), w.get("last_offset"))
        records = s.get("records")
        window_records[key] = max(window_records.get(key, 0), records if isinstance(records, int) else 0)
    names = {name for _, name in per_feature}
    alerts_of: dict[str, list[tuple[float, dict[str, object]]]] = defaultdict(list)
    other: list[dict[str, object]] = []
    for x, a in alerts:
        feature = a.get("feature")
        if isinstance(feature, str) and feature in names:
            alerts_of[feature].append((x, a))
        else:
            other.append(a)
    features = [_feature(name, source, per_feature[(source, name)], alerts_of.get(name, []), profile, tests)
                for source, name in per_feature]
    features.sort(key=lambda f: (f.moved_at is None, f.moved_at or 0.0, f.name))
    xs = [x for x, _ in rows] + [x for x, _ in alerts]
    starts = [parse_time(_window(s).get("first_event_time")) for _, s in rows] if time_axis else []
    lo = min([t for t in starts if t is not None] + xs, default=0.0)
    hi = max(xs, default=1.0)
    references = sorted({str(s.get("reference")) for _, s in rows if s.get("reference")})
    supplied = [r for r in references if profile is not None and r == profile.name]
    partitions = sorted({_series(_window(s)) for _, s in rows})
    return VersionData(model, version, features, references, supplied, (lo, hi), sum(window_records.values()),
                       len(window_records), partitions, [a for _, a in alerts], other)

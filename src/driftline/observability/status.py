"""What a worker group is monitoring, folded from its own output: pure functions behind ``driftline status``.

The workers keep their state in memory; what is visible from outside is what
they write to Kafka (alerts, window summaries, committed offsets) and the
group coordinator's view of the group.  These functions turn those records
into the tables an on-call person reads, without any I/O, so they are tested
directly and the command itself only reads topics and prints:

* :func:`active_alerts`: the alerts topic folded to the alert keys that are
  firing now (the last record of the key is ``firing``; duplicates of
  at-least-once delivery are recognised by ``alert_id``);
* :func:`open_incidents`: those alert keys grouped into model incidents (the
  features of one model version that drifted together share an
  ``incident_id``), with their features, kinds and detectors;
* :func:`monitored_features`: the window summaries folded to one row per
  (model, model_version, feature): the newest window of every input
  partition, combined;
* :func:`monitored_models`: those rows grouped by model version, with the
  reference each is compared with;
* :func:`partition_lag`: committed offsets against the log end, per partition,
  with the group member that owns each partition;
* :func:`model_performance`: the ``performance_summary`` records folded to
  one row per model version: label coverage and the newest window's
  accuracy (classifiers) or MAE (regressors), combined over the partitions;
* :func:`performance_windows` and :func:`concept_drift_alerts`: one model's
  windows with their performance and label coverage, and its concept-drift
  alerts (``status --model`` and ``report``);
* :func:`dead_letter_counts`: dead letters by reason, from the reason header.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from driftline.detection import published

__all__ = ["active_alerts", "open_incidents", "monitored_features", "monitored_models", "partition_lag", "alert_key",
           "model_performance", "performance_windows", "concept_drift_alerts", "dead_letter_counts", "performance_metric",
           "HIGHER_IS_WORSE", "LOWER_IS_WORSE"]

#: Drift statistics of a window summary where a larger value means more drift:
#: combined over partitions by their maximum.
HIGHER_IS_WORSE = ("page_hinkley", "page_hinkley_spread", "ks", "psi", "wasserstein_sd", "chi_square", "jensen_shannon")
#: p-values: combined by their minimum.
LOWER_IS_WORSE = ("ks_p_value", "p_value")


def alert_key(alert: Mapping[str, Any]) -> str:
    """``model/model_version/feature/kind`` (plus ``/check`` for data and output quality), the Kafka key of
    an alert record (components percent-encoded, see ``driftline.detection.keys``).

    >>> alert_key({"model": "fraud", "model_version": "v3", "feature": "amount", "kind": "data_drift", "detector": "psi"})
    'fraud/v3/amount/data_drift'
    """
    return published.alert_key(alert)


def active_alerts(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The alert keys firing now, from the alert records in topic order.

    A key is active when its last record is ``firing``: a later ``resolved``
    closes it, a later ``firing`` (a reminder after the cooldown, or a new
    episode) opens it again.  Records of one key share a Kafka partition, so
    their order in the topic is the order they were written; records of
    different keys may come interleaved in any order.  A record whose
    ``alert_id`` was seen before is a duplicate of at-least-once delivery and
    is skipped: a re-written ``firing`` after its ``resolved`` must not
    reopen the key.

    Each result is the newest firing record of the key plus ``alert_key``,
    ``firing_since`` (the episode's ``opened_event_time`` where the worker
    wrote one, else ``event_time`` of its first firing record, else its
    ``detected_at``) and ``firing_records`` (firing records in the episode:
    1 + reminders).  Sorted critical first, then by key.

    >>> f = {"model": "m", "model_version": "v1", "feature": "x", "detector": "psi", "severity": "warning"}
    >>> recs = [dict(f, alert_id="a", status="firing", event_time="t1"),
    ...         dict(f, alert_id="b", status="resolved"),
    ...         dict(f, alert_id="a", status="firing", event_time="t1")]   # a duplicate of the first
    >>> active_alerts(recs)
    []
    >>> [a["firing_since"] for a in active_alerts(recs + [dict(f, alert_id="c", status="firing", event_time="t9")])]
    ['t9']
    """
    seen: set[str] = set()
    state: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        alert_id = alert.get("alert_id")
        if isinstance(alert_id, str):
            if alert_id in seen:
                continue
            seen.add(alert_id)
        key = alert_key(alert)
        status = alert.get("status")
        if status == "resolved":
            state.pop(key, None)
        elif status == "firing":
            episode = state.get(key)
            since = episode["firing_since"] if episode else (_text(alert.get("opened_event_time")) or alert.get("event_time")
                                                             or alert.get("detected_at"))
            count = episode["firing_records"] + 1 if episode else 1
            state[key] = {**alert, "alert_key": key, "firing_since": since, "firing_records": count}
    return sorted(state.values(), key=lambda a: (a.get("severity") != "critical", a["alert_key"]))


def _text(value: object) -> str | None:
    """A non-empty string field of a record, else ``None``."""
    return value if isinstance(value, str) and value else None


def _names(value: object) -> list[str]:
    """A list of names of a record (``detectors``), else empty."""
    return [str(v) for v in value] if isinstance(value, list) else []


def open_incidents(active: Iterable[Mapping[str, Any]],
                   features: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The active alert keys (of :func:`active_alerts`) grouped into open model incidents.

    Features of one model version whose episodes opened together share an
    ``incident_id``; a record without one (an older worker) is an incident
    of its own (``incident_id`` null).  Each incident lists its ``features``,
    ``kinds`` and ``detectors``: the alerts' ``detectors`` (or ``detector``),
    joined with the ``incident`` field of the features' newest window
    summaries (rows of :func:`monitored_features`), which names the
    detectors that agreed since the alert was written; ``opened_event_time``
    is the earliest opening of its features, ``severity`` the worst, and
    ``members`` has one entry per alert key.  Sorted critical first, then
    oldest first.

    >>> a = {"model": "m", "model_version": "v1", "kind": "data_drift", "severity": "warning", "incident_id": "i1"}
    >>> inc = open_incidents([dict(a, feature="x", detector="cusum", alert_key="m/v1/x/data_drift", firing_since="t2"),
    ...                       dict(a, feature="y", detector="psi", alert_key="m/v1/y/data_drift", firing_since="t1")])
    >>> [(i["incident_id"], i["features"], i["detectors"], i["opened_event_time"]) for i in inc]
    [('i1', ['x', 'y'], ['cusum', 'psi'], 't1')]
    """
    seen: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for row in features:
        for found in row.get("incidents") or ():
            ident = _text(found.get("incident_id")) if isinstance(found, Mapping) else None
            if ident is not None:
                seen.setdefault((str(row.get("model")), str(row.get("model_version")), str(row.get("feature"))),
                                []).append(found)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for alert in active:
        model, version, feature = str(alert.get("model")), str(alert.get("model_version")), str(alert.get("feature"))
        ident = _text(alert.get("incident_id"))
        group = groups.setdefault((model, version, ident) if ident else (model, version, None, alert.get("alert_key")),
                                  {"model": model, "model_version": version, "incident_id": ident, "members": []})
        detectors = _names(alert.get("detectors"))
        if alert.get("detector") is not None and str(alert["detector"]) not in detectors:
            detectors.insert(0, str(alert["detector"]))
        member: dict[str, Any] = {"alert_key": alert.get("alert_key"), "feature": feature,
                                  "kind": str(alert.get("kind", "-")), "severity": str(alert.get("severity", "-")),
                                  "opened_event_time": _text(alert.get("firing_since")), "detectors": detectors,
                                  "findings": None, "statistic": _number(alert.get("statistic"))}
        for found in seen.get((model, version, feature), ()) if ident else ():
            if found.get("incident_id") != ident or found.get("kind", member["kind"]) != member["kind"]:
                continue
            for name in _names(found.get("detectors")) + ([str(found["detector"])] if found.get("detector") else []):
                if name not in detectors:
                    detectors.append(name)
            if type(found.get("findings")) is int:
                member["findings"] = max(member["findings"] or 0, found["findings"])
            statistic = _number(found.get("statistic"))
            if statistic is not None:
                member["statistic"] = statistic
        group["members"].append(member)
    out = []
    for group in groups.values():
        members = sorted(group["members"], key=lambda m: (m["feature"], m["kind"], str(m["alert_key"])))
        opened = [m["opened_event_time"] for m in members if m["opened_event_time"]]
        out.append({**group, "members": members,
                    "opened_event_time": min(opened) if opened else None,  # RFC 3339 UTC strings sort in time order
                    "severity": "critical" if any(m["severity"] == "critical" for m in members) else "warning",
                    "features": sorted({m["feature"] for m in members}),
                    "kinds": sorted({m["kind"] for m in members}),
                    "detectors": list(dict.fromkeys(d for m in members for d in m["detectors"]))})
    return sorted(out, key=lambda i: (i["severity"] != "critical", i["opened_event_time"] or "", i["model"],
                                      i["model_version"], i["incident_id"] or ""))


def _count(value: object, default: int = 0) -> int:
    """A count or partition number of a record, else ``default`` (a record may hold any JSON value)."""
    return value if type(value) is int else default


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _worst(name: str, values: list[float]) -> float:
    if name in LOWER_IS_WORSE:
        return min(values)
    if name == "mean_shift_sd":
        return max(values, key=abs)
    if name == "spread_ratio":  # farthest from 1 on a log scale: 0.5 and 2.0 are equally far
        return max(values, key=lambda v: abs(math.log(v)) if v > 0 else math.inf)
    return max(values)


def monitored_features(summaries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, model_version, feature) from the ``window_summary`` records.

    Each input partition has its own monitor, so a feature has one newest
    window per partition: the last summary read for that (topic, partition)
    is kept (summaries of one feature share a Kafka key, so they are read in
    the order they were written).  The row combines those windows: the
    partitions, the references they were compared with, the records of the
    newest windows and their missing ratio, the newest event time, and each
    drift statistic at its worst over the partitions (largest distance,
    smallest p-value, mean shift and spread ratio farthest from no change),
    so one drifting partition is not averaged away.  Other record types on
    the metrics topic (performance summaries, version comparisons) are
    skipped.

    >>> s = {"type": "window_summary", "model": "m", "model_version": "v1", "feature": "x", "source": "features",
    ...      "feature_type": "numeric", "reference": "warmup", "records": 100, "missing": 0, "warmed_up": True}
    >>> rows = monitored_features([
    ...     dict(s, window={"topic": "in", "partition": 0, "last_event_time": "2026-01-01T00:00:01.000Z"}, drift={"psi": 0.30}),
    ...     dict(s, window={"topic": "in", "partition": 1, "last_event_time": "2026-01-01T00:00:02.000Z"}, drift={"psi": 0.01})])
    >>> rows[0]["partitions"], rows[0]["drift"], rows[0]["records"]
    (['in[0]', 'in[1]'], {'psi': 0.3}, 200)
    """
    newest: dict[tuple[str, str, str], dict[tuple[str, int], Mapping[str, Any]]] = {}
    for s in summaries:
        if s.get("type", "window_summary") != "window_summary" or "feature" not in s:
            continue
        window = s.get("window") if isinstance(s.get("window"), Mapping) else {}
        where = (str(window.get("topic", "")), _count(window.get("partition"), -1))
        newest.setdefault((str(s.get("model")), str(s.get("model_version")), str(s["feature"])), {})[where] = s
    rows = []
    for (model, version, feature), by_partition in sorted(newest.items()):
        windows = [by_partition[p] for p in sorted(by_partition)]
        records = sum(_count(w.get("records")) for w in windows)
        missing = sum(_count(w.get("missing")) for w in windows)
        stats: dict[str, list[float]] = {}
        for w in windows:
            drift = w.get("drift") if isinstance(w.get("drift"), Mapping) else {}
            for name, value in drift.items():
                number = _number(value)
                if number is not None and name not in ("adwin_width", "df"):
                    stats.setdefault(name, []).append(number)
        types = {str(w.get("feature_type")) for w in windows} - {"unknown", "None"}
        incidents = [dict(w["incident"]) for w in windows if isinstance(w.get("incident"), Mapping)]
        times = [str(w["window"]["last_event_time"]) for w in windows
                 if isinstance(w.get("window"), Mapping) and w["window"].get("last_event_time")]
        rows.append({
            "model": model, "model_version": version, "feature": feature,
            "source": str(windows[-1].get("source", "features")),
            "feature_type": types.pop() if len(types) == 1 else ("mixed" if types else "unknown"),
            "references": sorted({str(w.get("reference", "warmup")) for w in windows}),
            "partitions": [f"{t}[{p}]" for t, p in sorted(by_partition)],
            "warmed_up": all(bool(w.get("warmed_up")) for w in windows),
            "records": records,
            "missing_ratio": missing / records if records else None,
            "last_event_time": max(times) if times else None,  # RFC 3339 UTC strings sort in time order
            "drift": {name: _worst(name, values) for name, values in sorted(stats.items())},
            "incidents": incidents,
        })
    return rows


def monitored_models(features: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of :func:`monitored_features` grouped by (model, model_version).

    >>> monitored_models([{"model": "m", "model_version": "v1", "feature": "x", "source": "features",
    ...                    "references": ["profile@ab12"], "last_event_time": "t"}])
    [{'model': 'm', 'model_version': 'v1', 'references': ['profile@ab12'], 'features': ['x'], 'outputs': [], 'last_event_time': 't'}]
    """
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for row in features:
        entry = models.setdefault((str(row["model"]), str(row["model_version"])), {
            "model": row["model"], "model_version": row["model_version"], "references": set(),
            "features": [], "outputs": [], "last_event_time": None})
        entry["references"].update(row.get("references") or ())
        entry["outputs" if row.get("source") == "prediction" else "features"].append(row["feature"])
        t = row.get("last_event_time")
        if t is not None and (entry["last_event_time"] is None or t > entry["last_event_time"]):
            entry["last_event_time"] = t
    return [{**m, "references": sorted(m["references"]), "features": sorted(m["features"]), "outputs": sorted(m["outputs"])}
            for _, m in sorted(models.items())]


def partition_lag(partitions: Iterable[tuple[str, int]], *, committed: Mapping[tuple[str, int], int],
                  log_end: Mapping[tuple[str, int], int], log_start: Mapping[tuple[str, int], int] | None = None,
                  owners: Mapping[tuple[str, int], str] | None = None, reset_to_earliest: bool = True) -> list[dict[str, Any]]:
    """Lag per partition: the log end offset minus the group's committed offset.

    ``committed`` holds the next offset the group will read (Kafka's
    convention), ``log_end`` the offset after the last readable record (the
    high watermark, or the last stable offset for ``read_committed``
    consumers).  A partition without a committed offset starts where
    ``auto_offset_reset`` says: from ``log_start`` when ``reset_to_earliest``
    (lag = every record kept), else the lag is unknown (``None``).  A log end
    below the committed offset (a stale or inconsistent answer) counts as no
    lag rather than a negative one, and ``log_end`` reports at least the
    committed offset.  Partitions whose log end is unknown get ``lag`` None.

    >>> partition_lag([("in", 0), ("in", 1)], committed={("in", 0): 90},  # doctest: +NORMALIZE_WHITESPACE
    ...               log_end={("in", 0): 100, ("in", 1): 40}, log_start={("in", 1): 0}, owners={("in", 0): "w-1"})
    [{'topic': 'in', 'partition': 0, 'member': 'w-1', 'committed': 90, 'log_end': 100, 'lag': 10},
     {'topic': 'in', 'partition': 1, 'member': None, 'committed': None, 'log_end': 40, 'lag': 40}]
    """
    rows = []
    for tp in sorted(set(partitions)):
        done, end = committed.get(tp), log_end.get(tp)
        if done is not None and done < 0:
            done = None
        if end is not None and end < 0:
            end = None
        if end is None:
            lag = None
        elif done is not None:
            end = max(end, done)
            lag = end - done
        elif reset_to_earliest and log_start is not None and tp in log_start and log_start[tp] >= 0:
            lag = max(0, end - log_start[tp])
        else:
            lag = None
        rows.append({"topic": tp[0], "partition": tp[1], "member": (owners or {}).get(tp),
                     "committed": done, "log_end": end, "lag": lag})
    return rows


def performance_metric(task: object) -> str:
    """The headline metric of a task: ``accuracy`` for classification, ``mae`` for regression.

    >>> performance_metric("regression"), performance_metric("classification")
    ('mae', 'accuracy')
    """
    return "mae" if task == "regression" else "accuracy"


def _window_of(s: Mapping[str, Any]) -> Mapping[str, Any]:
    return s["window"] if isinstance(s.get("window"), Mapping) else {}


def _of(record: Mapping[str, Any], model: str, model_version: str | None) -> bool:
    """Whether ``record`` is about ``model`` (and ``model_version``, when given)."""
    return str(record.get("model")) == model and (model_version is None or str(record.get("model_version")) == model_version)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def performance_windows(summaries: Iterable[Mapping[str, Any]], model: str,
                        model_version: str | None = None) -> list[dict[str, Any]]:
    """The ``performance_summary`` records of ``model`` (one per window, partition and version), in time order.

    Each row: ``model_version``, ``partition`` (the number: a window ends at an inference or at a label,
    on either topic), ``first_event_time`` and ``last_event_time``
    of the window, ``task``, ``metric`` (``accuracy`` or ``mae``) and its ``value`` in the window, the
    window's ``inferences`` and ``labeled`` (labels joined in it), ``label_coverage`` (labeled /
    inferences of the window: labels that arrive a window late count in the next one, so it can pass 1
    for a window) and ``label_coverage_total`` (since the worker started, as published).

    >>> s = {"type": "performance_summary", "model": "m", "model_version": "v1", "task": "classification",
    ...      "inferences": 200, "label_coverage": 0.5, "window": {"topic": "in", "partition": 0,
    ...      "last_event_time": "2026-01-01T00:00:01.000Z"}, "window_performance": {"labeled": 100, "accuracy": 0.9}}
    >>> [(r["metric"], r["value"], r["label_coverage"]) for r in performance_windows([s], "m")]
    [('accuracy', 0.9, 0.5)]
    """
    rows = []
    for s in summaries:
        if s.get("type") != "performance_summary" or not _of(s, model, model_version):
            continue
        window = _window_of(s)
        perf = _mapping(s.get("window_performance"))
        metric = performance_metric(s.get("task"))
        inferences = _count(s.get("inferences"))
        labeled = _count(perf.get("labeled"))
        rows.append({"model_version": str(s.get("model_version")),
                     "partition": _count(window.get("partition"), -1),
                     "first_event_time": _text(window.get("first_event_time")),
                     "last_event_time": _text(window.get("last_event_time")),
                     "task": str(s.get("task") or "unknown"), "metric": metric, "value": _number(perf.get(metric)),
                     "inferences": inferences, "labeled": labeled,
                     "label_coverage": labeled / inferences if inferences else None,
                     "label_coverage_total": _number(s.get("label_coverage"))})
    # RFC 3339 UTC strings sort in time order; a window without a time keeps its place at the start
    return sorted(rows, key=lambda r: (r["last_event_time"] or "", r["model_version"], r["partition"]))


def model_performance(summaries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, model_version) with labels: the newest window of each partition (number), combined.

    ``metric`` and ``value``: the newest windows' accuracy or MAE, weighted by their labeled records;
    ``cumulative``: the same since the workers started; ``label_coverage``: labeled / inferences of the
    newest windows; ``label_coverage_total``: the published coverage since the workers started, weighted
    by the windows' inferences; ``labeled`` and ``inferences`` of the newest windows; ``last_event_time``.

    >>> s = {"type": "performance_summary", "model": "m", "model_version": "v1", "task": "classification"}
    >>> rows = model_performance([
    ...     dict(s, window={"topic": "in", "partition": 0}, inferences=100, window_performance={"labeled": 50, "accuracy": 1.0}),
    ...     dict(s, window={"topic": "in", "partition": 1}, inferences=100, window_performance={"labeled": 150, "accuracy": 0.6})])
    >>> rows[0]["metric"], rows[0]["value"], rows[0]["label_coverage"]
    ('accuracy', 0.7, 1.0)
    """
    newest: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    for s in summaries:
        if s.get("type") != "performance_summary":
            continue
        # by partition number: one outcome monitor per partition, whose windows end on either topic
        where = _count(_window_of(s).get("partition"), -1)
        newest.setdefault((str(s.get("model")), str(s.get("model_version"))), {})[where] = s
    rows = []
    for (model, version), by_partition in sorted(newest.items()):
        windows = [by_partition[p] for p in sorted(by_partition)]
        tasks = {str(w.get("task")) for w in windows if w.get("task")}
        task = tasks.pop() if len(tasks) == 1 else ("mixed" if tasks else "unknown")
        metric = performance_metric(task)

        def weighted(field: str) -> float | None:
            pairs = [(_number(_mapping(w.get(field)).get(metric)), _count(_mapping(w.get(field)).get("labeled")))
                     for w in windows]
            pairs = [(v, n) for v, n in pairs if v is not None and n > 0]
            total = sum(n for _, n in pairs)
            return sum(v * n for v, n in pairs) / total if total else None

        inferences = sum(_count(w.get("inferences")) for w in windows)
        labeled = sum(_count(_mapping(w.get("window_performance")).get("labeled")) for w in windows)
        coverages = [(_number(w.get("label_coverage")), _count(w.get("inferences"))) for w in windows]
        coverages = [(c, n) for c, n in coverages if c is not None]
        weight = sum(n for _, n in coverages)
        times = [str(_window_of(w)["last_event_time"]) for w in windows if _window_of(w).get("last_event_time")]
        rows.append({"model": model, "model_version": version, "task": task, "metric": metric,
                     "value": weighted("window_performance"), "cumulative": weighted("cumulative_performance"),
                     "labeled": labeled, "inferences": inferences,
                     "label_coverage": labeled / inferences if inferences else None,
                     "label_coverage_total": (sum(c * n for c, n in coverages) / weight if weight
                                              else (coverages[0][0] if len(coverages) == 1 else None)),
                     "partitions": sorted(by_partition),
                     "last_event_time": max(times) if times else None})
    return rows


def concept_drift_alerts(alerts: Iterable[Mapping[str, Any]], model: str,
                         model_version: str | None = None) -> list[dict[str, Any]]:
    """The ``concept_drift`` alert records of ``model`` (firing and resolved), in topic order, without the
    duplicates of at-least-once delivery (same ``alert_id``): ``model_version``, ``status``, ``severity``,
    ``detector``, ``event_time``, ``statistic``, ``summary``, ``alert_id``.

    >>> a = {"model": "m", "model_version": "v1", "kind": "concept_drift", "status": "firing", "alert_id": "x"}
    >>> [r["status"] for r in concept_drift_alerts([a, a, dict(a, alert_id="y", status="resolved")], "m")]
    ['firing', 'resolved']
    """
    seen: set[str] = set()
    out = []
    for a in alerts:
        if a.get("kind") != "concept_drift" or not _of(a, model, model_version):
            continue
        ident = a.get("alert_id")
        if isinstance(ident, str):
            if ident in seen:
                continue
            seen.add(ident)
        out.append({"model_version": str(a.get("model_version")), "status": str(a.get("status")),
                    "severity": str(a.get("severity", "-")), "detector": str(a.get("detector", "-")),
                    "event_time": _text(a.get("event_time")) or _text(a.get("detected_at")),
                    "statistic": _number(a.get("statistic")), "summary": str(a.get("summary", "")),
                    "alert_id": ident if isinstance(ident, str) else None})
    return out


def dead_letter_counts(reasons: Iterable[object]) -> dict[str, int]:
    """Dead letters by reason (the ``driftline.reason`` header; a record without one counts as ``unknown``),
    most frequent first.

    >>> dead_letter_counts([b"invalid_json", b"missing_model", b"invalid_json", None])
    {'invalid_json': 2, 'missing_model': 1, 'unknown': 1}
    """
    counts: dict[str, int] = {}
    for r in reasons:
        name = r.decode("utf-8", "replace")[:100] if isinstance(r, bytes) and r else (r if isinstance(r, str) and r else "unknown")
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

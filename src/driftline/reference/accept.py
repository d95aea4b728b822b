"""Accept the new normal: a reference profile rebuilt from the window summaries the workers published.

``driftline reference accept`` reads three topics and hands their records to
these pure functions (no I/O here):

* :func:`open_incidents`: the alerts topic folded to the model version's open
  incidents (a ``firing`` record without a later ``resolved`` one under the
  same alert key), each with the event time its episode opened;
* :func:`accept`: the window summaries of that model version since then,
  turned into a profile.  A numeric feature's windows are mixed, each weighted
  by its count of values, from their ``shape`` (:mod:`driftline.reference.shape`);
  its counts, missing values and moments are the windows' added up (moments
  with Chan's formula, in window order).  A categorical feature's category
  counts are the windows' ``categories`` and ``more_categories`` added up
  (every category of the window unless the names pass 8 KB; summaries written
  before ``more_categories``: the 20 most frequent), the rest of each window's
  values counted as ``__other__``.
  Features not accepted keep the entry of the profile in force, or are left
  out when there is none.

The windows are those whose *first* event time is at or after ``since``: only
data seen after the incident opened, never the window it opened in (which
also holds data from before).  Duplicates of at-least-once delivery (the same
window of the same partition twice) count once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
from datasketches import kll_doubles_sketch

from driftline.contract.columns import FEATURES, OUTPUTS
from driftline.contract.decode import parse_timestamp
from driftline.detection import published
from driftline.errors import ProfileError
from driftline.reference.profile import (
    CATEGORICAL, MAX_PROFILE_CATEGORIES, NUMERIC, OTHER, PROFILE_KLL_K, FeatureProfile, ReferenceProfile,
    fold_categories,
)
from driftline.reference.shape import read_shape, rebuild_values
from driftline.stats.digest import ValueDigest
from driftline.stats.moments import Moments

__all__ = ["Incident", "AcceptedFeature", "Acceptance", "open_incidents", "accept", "AcceptError"]

#: Largest count taken from one summary (a forged one may say anything): sums of millions of them stay
#: within the 2**63 - 1 a profile may hold.
_MAX_COUNT = 2**40


class AcceptError(ProfileError):
    """Nothing to accept, and why (no summaries, no open incident, an unknown model version ...)."""


class Incident(NamedTuple):
    """An open incident key of the model version."""

    alert_key: str
    feature: str
    kind: str
    incident_id: str | None
    opened_ms: int | None
    opened_event_time: str | None


class AcceptedFeature(NamedTuple):
    source: str
    name: str
    kind: str
    windows: int
    values: int
    records: int


class Acceptance(NamedTuple):
    profile: ReferenceProfile
    accepted: list[AcceptedFeature]
    #: features whose entry comes from the profile in force
    kept: list[tuple[str, str]]
    windows: int
    events: int
    #: summaries skipped as malformed (wrong types, a shape of another grid)
    skipped: int


def open_incidents(alerts: Iterable[Mapping[str, Any]], model: str, model_version: str) -> list[Incident]:
    """The model version's alert keys whose last record is ``firing``, in topic order of the records.

    A record whose ``alert_id`` was seen before is a duplicate and is skipped;
    reminders (later ``firing`` records of an open key) keep the time the
    episode opened.  That time is ``opened_event_time``, else (records written
    before incidents had it) the ``event_time`` of the episode's first firing.
    """
    seen: set[str] = set()
    state: dict[str, Incident] = {}
    for alert in alerts:
        if alert.get("model") != model or alert.get("model_version") != model_version:
            continue
        if not isinstance(alert.get("feature"), str) or not isinstance(alert.get("kind"), str):
            continue  # no record of the workers: nothing to key it by
        alert_id = alert.get("alert_id")
        if isinstance(alert_id, str):
            if alert_id in seen:
                continue
            seen.add(alert_id)
        try:
            key = published.alert_key(alert)
        except Exception:  # noqa: BLE001 - a forged record without the fields of a key
            continue
        status = alert.get("status")
        if status == "resolved":
            state.pop(key, None)
        elif status == "firing" and key not in state:
            opened = alert.get("opened_event_time")
            if not isinstance(opened, str) or parse_timestamp(opened) is None:
                opened = alert.get("event_time") if isinstance(alert.get("event_time"), str) else None
            incident = alert.get("incident_id")
            state[key] = Incident(key, str(alert.get("feature")), str(alert.get("kind")),
                                  incident if isinstance(incident, str) else None,
                                  parse_timestamp(opened) if opened is not None else None, opened)
    return list(state.values())


def _count(value: object) -> int | None:
    return value if type(value) is int and 0 <= value <= _MAX_COUNT else None


def _finite(value: object) -> float | None:
    if type(value) not in (int, float) or not np.isfinite(value):  # type: ignore[arg-type]
        return None
    return float(value)  # type: ignore[arg-type]


class _Window(NamedTuple):
    order: tuple  # (first event time, topic, partition, first offset): a fixed order, whatever the read order
    records: int
    count: int
    non_finite: int
    type_mismatch: int
    moments: Moments | None
    shape: np.ndarray | None
    categories: dict[str, int] | None


def _window(s: Mapping[str, Any], kind: str, first_ms: int, where: tuple) -> _Window | None:
    """One summary's numbers, or None when it is malformed."""
    records, count = _count(s.get("records")), _count(s.get("count"))
    non_finite, mismatch = _count(s.get("non_finite", 0)), _count(s.get("type_mismatches", 0))
    if records is None or count is None or non_finite is None or mismatch is None or count > records:
        return None
    order = (first_ms, *where)
    if kind == NUMERIC:
        if count == 0:
            return _Window(order, records, 0, non_finite, mismatch, Moments(), None, None)
        shape = read_shape(s.get("shape"))
        mean, lo, hi = _finite(s.get("mean")), _finite(s.get("min")), _finite(s.get("max"))
        sd = _finite(s.get("sd")) if count > 1 else 0.0
        if shape is None or mean is None or lo is None or hi is None or sd is None or sd < 0 or not lo <= hi:
            return None
        m2 = sd * sd * (count - 1)
        if not np.isfinite(m2) or not lo <= shape[0] <= shape[-1] <= hi:
            return None
        return _Window(order, records, count, non_finite, mismatch, Moments(count, mean, m2, lo, hi), shape, None)
    top, more = s.get("categories"), s.get("more_categories", {})  # summaries before more_categories: the top 20
    if not isinstance(top, Mapping) or not isinstance(more, Mapping):
        return None
    counts: dict[str, int] = {}
    for cats in (top, more):
        for name, n in cats.items():
            n = _count(n)
            if n is None or not isinstance(name, str):
                return None
            counts.setdefault(name, n)  # a name in both (no worker writes that) counts once
    named = sum(counts.values())
    if named > count:
        return None
    if count > named:
        counts[OTHER] = counts.get(OTHER, 0) + count - named  # the window's rarer names
    return _Window(order, records, count, non_finite, mismatch, None, None, counts)


def accept(summaries: Iterable[Mapping[str, Any]], *, model: str, model_version: str, since_ms: int,
           features: Iterable[str] | None = None, current: ReferenceProfile | None = None,
           kll_k: int = PROFILE_KLL_K) -> Acceptance:
    """The profile of what the windows since ``since_ms`` saw (see the module docstring).

    ``features``: names to accept (features or outputs), default every one
    with windows since then.  Raises :class:`AcceptError` naming the cause
    when there is nothing to accept.
    """
    wanted = set(features) if features is not None else None
    by_feature: dict[tuple[str, str], dict[tuple, _Window]] = {}
    kinds: dict[tuple[str, str], str] = {}
    known, older, skipped = False, 0, 0
    for s in summaries:
        if s.get("type", "window_summary") != "window_summary":
            continue
        if s.get("model") != model or s.get("model_version") != model_version:
            continue
        known = True
        name, source, kind = s.get("feature"), s.get("source", FEATURES), s.get("feature_type")
        window = s.get("window")
        if not isinstance(name, str) or source not in (FEATURES, OUTPUTS) or not isinstance(window, Mapping):
            skipped += 1
            continue
        if kind not in (NUMERIC, CATEGORICAL) or (wanted is not None and name not in wanted):
            continue
        first = window.get("first_event_time")
        first_ms = parse_timestamp(first) if isinstance(first, str) else None
        if first_ms is None or first_ms < since_ms:
            older += 1
            continue
        where = (str(window.get("topic")), _count(window.get("partition")) or 0,
                 _count(window.get("first_offset")) or 0, _count(window.get("last_offset")) or 0)
        key = (source, name)
        if kinds.setdefault(key, kind) != kind:
            raise AcceptError(f"{source} {name[:200]!r} of {model}/{model_version} is {kinds[key]} in some windows since "
                              f"then and {kind} in others: accept it once its type is settled (or leave it out)")
        parsed = _window(s, kind, first_ms, where)
        if parsed is None:
            skipped += 1
            continue
        by_feature.setdefault(key, {})[where] = parsed  # the same window twice (at-least-once): once
    if not by_feature:
        if not known and current is None:
            raise AcceptError(f"unknown model version {model}/{model_version}: no window summaries of it on the "
                              f"metrics topic and no profile of it on the references topic")
        if wanted is not None and known and not older and not skipped:
            raise AcceptError(f"no window summaries of {', '.join(sorted(wanted))} in {model}/{model_version}")
        raise AcceptError(f"no window summaries of {model}/{model_version} since the incident opened "
                          + (f"({older} older ones): " if older else ": ")
                          + "no window closed since then; wait for one (window_events / window_seconds), "
                            "or pass an earlier --since")
    if wanted is not None:
        missing = sorted(wanted - {name for _, name in by_feature})
        if missing:
            raise AcceptError(f"no window summaries since then of {', '.join(repr(m) for m in missing)} "
                              f"in {model}/{model_version}")

    out = ReferenceProfile(model, model_version)
    accepted: list[AcceptedFeature] = []
    events: dict[str, dict[tuple, int]] = {FEATURES: {}, OUTPUTS: {}}
    for key in sorted(by_feature):
        windows = [by_feature[key][w] for w in sorted(by_feature[key], key=lambda w: by_feature[key][w].order)]
        kind = kinds[key]
        fp = FeatureProfile(key[1], key[0], kind, sum(w.records for w in windows), sum(w.count for w in windows),
                            sum(w.non_finite for w in windows), sum(w.type_mismatch for w in windows))
        if kind == NUMERIC:
            for w in windows:
                assert w.moments is not None
                fp.moments.merge(w.moments)
            if not (np.isfinite(fp.moments.mean) and np.isfinite(fp.moments.m2)):
                raise AcceptError(f"{key[0]} {key[1]!r}: its values are too large for a profile's moments "
                                  "(the mean or variance overflows a double)")
            values = rebuild_values((w.count, w.shape) for w in windows if w.shape is not None)
            fp.sketch = kll_doubles_sketch(kll_k)
            if values.size:
                fp.sketch.update(values)
            fp.digest = ValueDigest.of(values)
        else:
            cats: dict[str, int] = {}
            for w in windows:
                for name, n in (w.categories or {}).items():
                    cats[name] = cats.get(name, 0) + n
            fp.categories = fold_categories(cats, MAX_PROFILE_CATEGORIES)
        out.features[key] = fp
        accepted.append(AcceptedFeature(key[0], key[1], kind, len(windows), fp.count, fp.records))
        for w in windows:  # the events of a window: the most records any feature of its source had there
            where = w.order[1:4]
            events[key[0]][where] = max(events[key[0]].get(where, 0), w.records)
    # events per source: the accepted windows'; a source none of whose features was accepted keeps the
    # profile in force's count (so accepting the same windows again gives the same profile, and the same id)
    out.source_records = {source: sum(per.values()) if per else (current.source_records.get(source, 0) if current else 0)
                          for source, per in events.items()}
    out.records = max(out.source_records.values())
    kept = []
    if current is not None:
        for key, fp in sorted(current.features.items()):
            if key not in out.features:
                out.features[key] = fp
                kept.append(key)
    all_windows = {w[:3] for per in by_feature.values() for w in per}
    return Acceptance(out, accepted, kept, len(all_windows), out.records, skipped)

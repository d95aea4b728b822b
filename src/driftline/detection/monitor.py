"""The monitor of one model version on one input partition.

It turns a stream of decoded events into findings (drift and data quality) and
window summaries.  No I/O happens here: the Kafka worker and file replay feed
the same :meth:`ModelMonitor.process` with events in offset order.

Per feature it keeps a :class:`~driftline.state.numeric.NumericState` or a
:class:`~driftline.state.categorical.CategoricalState` (decided by the
reference profile, else by the first value seen) plus data-quality counters.
The reference is a :class:`~driftline.reference.profile.ReferenceProfile` when
one is given (from the start or hot-swapped with :meth:`ModelMonitor.use_reference`),
else each feature's first ``warmup`` values.  Events are processed in chunks that
never cross a tumbling window (``window_events`` records or ``window_seconds``
of event time, whichever comes first; either may be 0 = not used); at each window's end the windowed
checks run and one summary per feature is emitted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from itertools import compress
from typing import Generator, Sequence

import numpy as np

from driftline.contract.columns import FEATURES, OUTPUTS, Column, EventBlock, LocatedEvent, Row, block_columns
from driftline.contract.names import DIGEST_CHARS, bounded, is_plain
from driftline.detection.findings import Finding, Kind, Severity, WindowSpan
from driftline.detection.keys import feature_part
from driftline.detection.settings import MonitorSettings
from driftline.reference.profile import CATEGORICAL, NUMERIC, ReferenceProfile
from driftline.reference.shape import more_categories, window_shape
from driftline.state.categorical import CategoricalState, CategoryDetection
from driftline.state.detectors import CATEGORY_CUSUM, PAGE_HINKLEY, PAGE_HINKLEY_SPREAD
from driftline.state.numeric import NumericState, update_many
from driftline.stats.divergence import chi_square_critical, chi_square_two_sample

__all__ = ["ModelMonitor", "LocatedEvent", "EventBlock", "process_blocks", "MonitorOutput", "Check", "WARMUP"]

#: The ``reference`` of alerts and summaries of features compared with their warm-up.
WARMUP = "warmup"

class Check:
    """Names of the data-quality checks (the ``detector`` of a data-quality alert)."""

    TYPE_CHANGE = "type_change"
    NON_FINITE = "non_finite"
    INVALID_VALUE = "invalid_value"
    NEW_FEATURE = "new_feature"
    VANISHED_FEATURE = "vanished_feature"
    MISSING_RATE = "missing_rate"
    CHI_SQUARE = "chi_square"
    NOT_IN_REFERENCE = "not_in_reference"
    #: a feature or output name longer than max_name_chars or not valid UTF-8 (monitored under its bounded form)
    INVALID_NAME = "invalid_name"
    #: category values longer than max_category_chars, not valid UTF-8, or spelt __other__ (counted bounded)
    INVALID_CATEGORY = "invalid_category"
    #: a record's event time further ahead of its Kafka timestamp than max_event_time_skew_seconds
    EVENT_TIME_SKEW = "event_time_skew"


@dataclass(slots=True)
class MonitorOutput:
    findings: list[Finding]
    summaries: list[dict[str, object]]
    #: data-quality counts of this call: (feature, check) -> count
    quality_counts: dict[tuple[str, str], int]
    #: features not monitored because the per-model cap was reached
    overflow_features: int = 0
    #: health reports, in order with the findings: (findings before it, source, feature, kind, matches the
    #: reference now, event time, the data it is about); see :meth:`driftline.detection.alerts.AlertBook.health`
    health: list[tuple[int, str, str, str, bool, int | None, WindowSpan]] = field(default_factory=list)


_NUMBER_TYPES = frozenset((int, float))
_FLOAT_ONLY = frozenset({float})
_add_reduce = np.add.reduce
_TEXT = frozenset({str})
#: ``window_events`` 0: windows are cut by event time only
_UNLIMITED = 1 << 62


class _Feature:
    """Per-feature state and counters inside a model monitor."""

    __slots__ = (
        "name", "source", "kind", "numeric", "categorical", "seed",
        "records", "present", "non_finite", "type_mismatch", "invalid",
        "ref_records", "ref_missing", "scored_records", "scored_missing", "reference", "profiled",
        "window_failed",
    )

    def __init__(self, name: str, source: str, seed: int) -> None:
        self.name = name
        self.source = source
        self.kind: str | None = None
        self.numeric: NumericState | None = None
        self.categorical: CategoricalState | None = None
        self.seed = seed
        self._reset_window()
        self.ref_records = 0
        self.ref_missing = 0
        self.reference = WARMUP
        #: the missing-rate and value references come from a profile
        self.profiled = False
        #: whether the last window's test found a drift (the feature differs until a window passes)
        self.window_failed = False

    def _reset_window(self) -> None:
        self.records = 0        # records of this feature's source in the window
        self.present = 0        # valid values
        self.non_finite = 0
        self.type_mismatch = 0
        self.invalid = 0
        self.scored_records = 0  # records after the missing-rate reference was complete
        self.scored_missing = 0

    @property
    def missing(self) -> int:
        return self.records - self.present


class ModelMonitor:
    """Detection state for one (topic, partition, model, model_version)."""

    def __init__(self, *, topic: str, partition: int, model: str, model_version: str, settings: MonitorSettings,
                 reference: ReferenceProfile | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.model = model
        self.model_version = model_version
        self.settings = settings
        self.features: dict[tuple[str, str], _Feature] = {}
        self.source_records = {FEATURES: 0, OUTPUTS: 0}
        self.records = 0
        self._window_records = 0
        self._window_first_offset: int | None = None
        self._window_last_offset: int | None = None
        self._window_first_time: int | None = None
        self._window_last_time: int | None = None
        self._overflow_features = 0
        self._present_in_chunk: dict[tuple[str, str], int] = {}
        #: newest event time of this monitor's events (the pipeline keeps it): its model's clock after a restore
        self.newest_ms: int | None = None
        #: features sharing the model's false-alarm budget (grows as features appear)
        self.family = 1
        self.profile: ReferenceProfile | None = None
        self.reference_name = WARMUP
        if reference is not None:
            self.use_reference(reference)

    # ------------------------------------------------------------ checkpoints
    def __getstate__(self) -> dict[str, object]:
        """Checkpointed state (read by driftline.state.codec): settings and the profile stay out (the profile by its id)."""
        state = self.__dict__.copy()
        state["settings"] = None
        state["profile"] = self.profile.id if self.profile is not None else None
        return state

    def reattach(self, settings: MonitorSettings, profile: ReferenceProfile | None) -> None:
        """After a checkpoint is decoded: take the worker's settings and its profile of this model version.

        If the profile in force changed while the state was in a checkpoint,
        the monitor switches to it as it would have live.
        """
        saved_id = self.profile  # the id string written by __getstate__, or None
        self.settings = settings
        if profile is not None and saved_id == profile.id:
            self.profile = profile
        elif saved_id is not None or profile is not None:
            self.use_reference(profile)

    # -------------------------------------------------------------- reference
    def use_reference(self, profile: ReferenceProfile | None) -> None:
        """Compare with ``profile`` from now on (``None``: back to warm-up references).

        Features of the profile are monitored from the next event on, even
        before the stream sends them (so a feature the producer never sends
        shows up as vanished).  A feature the profile lacks, or has no valid
        value for, keeps (or restarts) a warm-up reference.  Detectors restart
        against the new reference; open windows carry on.
        """
        if profile is not None and (profile.model, profile.model_version) != (self.model, self.model_version):
            raise ValueError(f"profile of {profile.key} given to the monitor of {self.model}/{self.model_version}")
        previous = self.profile
        self.profile = profile
        self.reference_name = profile.name if profile is not None else WARMUP
        if profile is not None:
            self._grow_family(len(profile.features))
            for (source, name) in profile.features:
                # (a name the stream could not send as it is, too long or not UTF-8, is left to warm-up)
                if ((source, name) not in self.features and len(self.features) < self.settings.max_features
                        and is_plain(name, self.settings.max_name_chars)):
                    self.features[(source, name)] = _Feature(name, source, self._seed(name))
        for feature in self.features.values():
            had_profile = previous is not None and feature.profiled
            if not self._apply_profile(feature) and had_profile:
                self._restart_warmup(feature)

    def _grow_family(self, features: int) -> None:
        """More features share the model's false-alarm budget: tighten every detector."""
        family = min(max(self.family, features), self.settings.max_features)
        if family == self.family:
            return
        self.family = family
        params = self.settings.detector_for(family)
        share = self.settings.category_share(family)
        for feature in self.features.values():
            if feature.numeric is not None:
                feature.numeric.retune(params)
            if feature.categorical is not None:
                feature.categorical.retune(share)

    def _apply_profile(self, feature: _Feature) -> bool:
        """Point ``feature`` at the profile's reference; False if the profile has none for it."""
        fp = self.profile.features.get((feature.source, feature.name)) if self.profile is not None else None
        if fp is None or fp.count == 0:
            return False
        s = self.settings
        if feature.kind != fp.kind:
            feature.kind = fp.kind
            feature.numeric = feature.categorical = None
        if fp.kind == NUMERIC:
            if feature.numeric is None:
                feature.numeric = NumericState(s.detector_for(self.family), warmup=s.warmup, seed=feature.seed)
            assert fp.sketch is not None
            feature.numeric.use_reference(fp.sketch, fp.moments, s.detector_for(self.family))
        elif fp.kind == CATEGORICAL:
            if feature.categorical is None:
                feature.categorical = CategoricalState(max_categories=s.max_categories, warmup=s.warmup,
                                                       max_chars=s.max_category_chars,
                                                       share=s.category_share(self.family))
            feature.categorical.use_reference(fp.categories or {})
        feature.ref_records, feature.ref_missing = fp.records, fp.missing
        feature.scored_records = feature.scored_missing = 0
        feature.profiled = True
        feature.reference = self.reference_name
        feature.window_failed = False  # the detectors restart against the new reference
        return True

    def _restart_warmup(self, feature: _Feature) -> None:
        feature.numeric = feature.categorical = None
        feature.kind = None
        feature.ref_records = feature.ref_missing = 0
        feature.scored_records = feature.scored_missing = 0
        feature.profiled = False
        feature.reference = WARMUP
        feature.window_failed = False

    def _seed(self, name: str) -> int:
        return int.from_bytes(hashlib.blake2b(f"{self.model}/{self.model_version}/{name}".encode(), digest_size=8).digest(), "big")

    # ------------------------------------------------------------------ intake
    def process(self, events: Sequence[LocatedEvent]) -> MonitorOutput:
        """Consume events (in offset order) and return what they caused."""
        return process_blocks([(self, EventBlock.of(events))])[0]

    def steps(self, block: EventBlock, out: MonitorOutput) -> Generator[list, list, None]:
        """Consume a block of events (in offset order) into ``out``.

        A generator, so the numeric state updates of many monitors run together
        (:func:`process_blocks`): it yields the ``(NumericState, values)``
        updates of each chunk and takes back their detections
        (:func:`~driftline.state.numeric.update_many`).
        """
        self._overflow_features = 0
        settings = self.settings
        times = block.times
        start = 0
        n = len(block)
        while start < n:
            if self._window_records == 0:
                self._window_first_offset = block.offsets[start]
                self._window_first_time = times[start]
            room = (settings.window_events or _UNLIMITED) - self._window_records
            end = min(n, start + room)
            close = end - start == room
            if settings.window_seconds and self._window_first_time is not None:
                limit = self._window_first_time + settings.window_seconds * 1000.0
                seg = times[start:end]
                if None in seg or max(seg) >= limit:  # type: ignore[type-var]
                    for i in range(start, end):
                        t = times[i]
                        if t is not None and t >= limit:
                            end, close = i, True
                            break
                if end == start:
                    # The open window timed out before this event (it came from an
                    # earlier call): close it; the event opens the next one.
                    self._close_window(out)
                    continue
            chunk = block.cut(start, end)
            updates, parts = self._prepare_chunk(chunk, out)
            detected = (yield updates) if updates else []
            self._finish_chunk(chunk, parts, detected, out)
            if close:
                self._close_window(out)
            start = end
        out.overflow_features = self._overflow_features

    def _name(self, name: str) -> str:
        """The name a feature is kept under: itself, or its bounded form (:mod:`driftline.contract.names`)."""
        limit = self.settings.max_name_chars
        return name if is_plain(name, limit) else bounded(name, limit)

    def _feature(self, source: str, name: str, out: MonitorOutput, row: LocatedEvent) -> _Feature | None:
        """The feature kept for ``(source, name)`` (``name`` as :meth:`_name` keeps it), perhaps new."""
        key = (source, name)
        feature = self.features.get(key)
        if feature is not None:
            return feature
        if len(self.features) >= self.settings.max_features:
            return None
        feature = _Feature(name, source, self._seed(name))
        self.features[key] = feature
        if not is_plain(name, self.settings.max_name_chars):  # a bounded form (see _name)
            self._count(out, feature, Check.INVALID_NAME, 1)
            out.findings.append(self._finding(
                feature, Kind.DATA_QUALITY, Check.INVALID_NAME, Severity.WARNING, 1.0, 0.0, row,
                f"{self._noun(feature).capitalize()} has a name longer than {self.settings.max_name_chars} characters "
                f"or not valid UTF-8; it is monitored under this bounded name (its first characters and a digest "
                f"of the whole name). Shorten the name at the producer.",
            ))
        if self.profile is not None:
            self._count(out, feature, Check.NOT_IN_REFERENCE, 1)
            out.findings.append(self._finding(
                feature, Kind.DATA_QUALITY, Check.NOT_IN_REFERENCE, Severity.WARNING, 1.0, 0.0, row,
                f"{self._noun(feature).capitalize()} is not in the reference {self.reference_name}; it is compared "
                f"with its own first {self.settings.warmup} values instead. Rebuild the profile if the schema changed.",
            ))
        elif self.source_records[source] > self.settings.warmup:
            out.findings.append(self._finding(
                feature, Kind.DATA_QUALITY, Check.NEW_FEATURE, Severity.WARNING, 1.0, 0.0, row,
                f"New {self._noun(feature)} appeared after warm-up ({self.source_records[source]} records without it); "
                f"check whether the upstream schema changed.",
            ))
            self._count(out, feature, Check.NEW_FEATURE, 1)
        return feature

    def _prepare_chunk(self, chunk: EventBlock, out: MonitorOutput) -> tuple[list, list]:
        """Everything a chunk does but the numeric state updates, which it returns (with, per feature,
        its findings so far and the rows of its numeric values) for :meth:`_finish_chunk`."""
        if not chunk:
            return [], []
        self._present_in_chunk = {}
        cols, n_source = block_columns(chunk)
        known = self.features
        # (a kept name is short enough and UTF-8: it is plain unless it looks like a bounded form)
        if not all((key in known and (len(key[1]) <= DIGEST_CHARS or key[1][-DIGEST_CHARS - 1] != "~"))
                   or is_plain(key[1], self.settings.max_name_chars) for key in cols):
            renamed: dict[tuple[str, str], Column] = {}
            for (source, name), col in cols.items():
                key = (source, self._name(name))
                if key in renamed:  # two names with one bounded form (their digests collide): one feature
                    merged = sorted(zip(renamed[key].rows + col.rows, renamed[key].values + col.values), key=lambda rv: rv[0])
                    col = Column([r for r, _ in merged], [v for _, v in merged])
                renamed[key] = col
            cols = renamed
        unseen = len(cols.keys() - known.keys())
        if unseen:
            self._grow_family(len(self.features) + unseen)
        last = len(chunk) - 1
        self._window_records += len(chunk)
        self.records += len(chunk)
        self._window_last_offset = chunk.offsets[last]
        if chunk.times[last] is not None:
            self._window_last_time = chunk.times[last]

        updates: list[tuple[NumericState, np.ndarray]] = []
        parts: list[tuple[_Feature, list[Finding], Column | None]] = []
        findings = out.findings
        try:
            for (source, name), col in cols.items():
                out.findings = found = []  # this feature's findings, in order, until its numeric detections
                feature = known.get((source, name)) or self._feature(source, name, out, chunk[col.rows[0]])
                if feature is None:
                    self._overflow_features += 1
                    continue
                numeric = self._update_feature(feature, col, chunk, out)
                # its values let go now, while in cache (at the chunk's end, all the columns' values were walked
                # again from memory; sparse columns' values lie at irregular strides, which no prefetch follows)
                col.values = []
                if numeric is not None:
                    updates.append((feature.numeric, numeric[1]))
                    parts.append((feature, found, numeric[0]))
                elif found:
                    parts.append((feature, found, None))
        finally:
            out.findings = findings
        # Every known feature of a source sees that source's records (absent = missing).
        for feature in self.features.values():
            n = n_source[feature.source]
            if n == 0:
                continue
            feature.records += n
            missing_here = n - self._present_in_chunk.get((feature.source, feature.name), 0)
            if not feature.profiled and feature.ref_records < self.settings.warmup:
                feature.ref_records += n
                feature.ref_missing += missing_here
            else:
                feature.scored_records += n
                feature.scored_missing += missing_here
        for source, n in n_source.items():
            self.source_records[source] += n
        return updates, parts

    def _finish_chunk(self, chunk: EventBlock, parts: list, detected: list, out: MonitorOutput) -> None:
        """Each feature's findings of the chunk, in column order, its numeric detections after the rest."""
        results = iter(detected)
        for feature, found, num_col in parts:
            out.findings.extend(found)
            if num_col is not None:
                for idx, det, (shift, spread) in next(results):
                    out.findings.append(self._drift_finding(feature, det, shift, spread, chunk[num_col.rows[idx]]))

    @staticmethod
    def _state_differs(feature: _Feature) -> bool | None:
        """Whether the sequential detectors say the feature differs from its reference now (None: not scored yet)."""
        state = feature.numeric if feature.numeric is not None else feature.categorical
        if state is None or not state.warmed_up:
            return None
        return state.differs

    def _matches(self, feature: _Feature) -> bool | None:
        differs = self._state_differs(feature)
        return None if differs is None else not (differs or feature.window_failed)

    def _update_feature(self, feature: _Feature, col: Column, chunk: EventBlock,
                        out: MonitorOutput) -> tuple[Column, np.ndarray] | None:
        """Data-quality checks and the categorical state of one column; for a numeric feature, its valid
        values (and the column their rows are read from) for the numeric state, which :meth:`_finish_chunk`
        updates.  A column's rows are read only where a finding names one (a gathered column finds them then)."""
        values = col.values
        floats = col.floats  # (the values as float64, when each is a float: converted while gathered)
        kinds = _FLOAT_ONLY if floats is not None else set(map(type, values))
        if feature.kind is None:
            first = next((v for v in values if v is not None), None)
            if first is None:
                self._mark_present(feature, 0)
                return None
            if type(first) in _NUMBER_TYPES:
                feature.kind = "numeric"
                feature.numeric = NumericState(self.settings.detector_for(self.family), warmup=self.settings.warmup,
                                               seed=feature.seed)
            else:
                feature.kind = "categorical"
                feature.categorical = CategoricalState(max_categories=self.settings.max_categories,
                                                       warmup=self.settings.warmup,
                                                       max_chars=self.settings.max_category_chars,
                                                       share=self.settings.category_share(self.family))

        if feature.kind == "numeric":
            if kinds <= _NUMBER_TYPES:
                num_col = col
                num_vals = floats if floats is not None else _floats(values)
            else:
                num_rows, raw = [], []
                mismatch_row = invalid_row = None
                for r, v in zip(col.rows, values):
                    t = type(v)
                    if t is float or t is int:
                        num_rows.append(r)
                        raw.append(v)
                    elif v is None:
                        continue
                    elif t is str or t is bool:
                        feature.type_mismatch += 1
                        mismatch_row = r if mismatch_row is None else mismatch_row
                    else:
                        feature.invalid += 1
                        invalid_row = r if invalid_row is None else invalid_row
                num_vals = _floats(raw)
                num_col = Column(num_rows, raw)
                if mismatch_row is not None:
                    self._type_change(feature, chunk[mismatch_row], out, "text or boolean values")
                if invalid_row is not None:
                    self._invalid_value(feature, chunk[invalid_row], out)
            total = float(_add_reduce(num_vals))
            # (a finite sum: every value is finite; one pass instead of isfinite and all)
            finite = None if total - total == 0.0 else np.isfinite(num_vals)
            if finite is not None and not finite.all():
                bad = int((~finite).sum())
                feature.non_finite += bad
                num_rows = num_col.rows
                first_bad = num_rows[int(np.argmin(finite))]
                self._count(out, feature, Check.NON_FINITE, bad)
                out.findings.append(self._finding(
                    feature, Kind.DATA_QUALITY, Check.NON_FINITE, Severity.WARNING, float(bad), 0.0, chunk[first_bad],
                    f"{self._noun(feature).capitalize()} received NaN, infinite or out-of-range values (the first at offset "
                    f"{chunk[first_bad].offset}); find the producer step that emits them (they are counted as missing, "
                    f"and the window summaries count them under non_finite).",
                ))
                keep = finite.tolist()
                num_col = Column(list(compress(num_rows, keep)), list(compress(num_col.values, keep)))
                num_vals = num_vals[finite]
            self._mark_present(feature, num_vals.size)
            assert feature.numeric is not None
            return (num_col, num_vals) if num_vals.size else None
        else:
            mismatch_at = invalid_at = None  # (indices in values)
            if kinds == _TEXT:  # every value a string: each is a category as it is
                cats: list[str] = values  # type: ignore[assignment]
            else:
                cats = []
                for i, v in enumerate(values):
                    t = type(v)
                    if t is str:
                        cats.append(v)  # type: ignore[arg-type]
                    elif t is bool:
                        cats.append("true" if v else "false")
                    elif v is None:
                        continue
                    elif t is float or t is int:
                        if t is float and not math.isfinite(v):  # type: ignore[arg-type]
                            feature.non_finite += 1
                        else:
                            feature.type_mismatch += 1
                            mismatch_at = i if mismatch_at is None else mismatch_at
                    else:
                        feature.invalid += 1
                        invalid_at = i if invalid_at is None else invalid_at
            if mismatch_at is not None:
                self._type_change(feature, chunk[col.rows[mismatch_at]], out, "numeric values")
            if invalid_at is not None:
                self._invalid_value(feature, chunk[col.rows[invalid_at]], out)
            self._mark_present(feature, len(cats))
            assert feature.categorical is not None
            renamed, detected = feature.categorical.update_detect(cats)
            if detected:
                cat_rows = [r for r, v in zip(col.rows, values) if type(v) is str or type(v) is bool]
                for idx, det in detected:
                    out.findings.append(self._category_finding(feature, det, chunk[cat_rows[idx]]))
            if renamed:
                cat = feature.categorical
                rows = col.rows
                row = next((r for r, v in zip(rows, values) if type(v) is str and cat.text(v) != v), rows[0])
                self._count(out, feature, Check.INVALID_CATEGORY, renamed)
                out.findings.append(self._finding(
                    feature, Kind.DATA_QUALITY, Check.INVALID_CATEGORY, Severity.WARNING, float(renamed), 0.0,
                    chunk[row],
                    f"{self._noun(feature).capitalize()} received {renamed} value(s) longer than "
                    f"{cat.max_chars} characters, not valid UTF-8 or spelt '__other__' (the first at offset "
                    f"{chunk[row].offset}); they are counted under a bounded form (their first characters and a "
                    f"digest of the whole value).",
                ))

    def _mark_present(self, feature: _Feature, n: int) -> None:
        feature.present += n
        self._present_in_chunk[(feature.source, feature.name)] = n

    # ------------------------------------------------------------- findings
    @staticmethod
    def _noun(feature: _Feature) -> str:
        if feature.source == OUTPUTS:
            return f"output '{feature.name}'"
        return f"feature '{feature.name}'"

    def _span(self, row: LocatedEvent) -> WindowSpan:
        first = self._window_first_offset if self._window_first_offset is not None else row.offset
        return WindowSpan(self.topic, self.partition, first, row.offset, self._window_first_time, row.time_ms)

    def _finding(self, feature: _Feature, kind: str, detector: str, severity: str, statistic: float,
                 threshold: float, row: LocatedEvent, summary: str, **details: object) -> Finding:
        where = f"{self.model} {self.model_version}"
        return Finding(
            model=self.model, model_version=self.model_version, feature=feature.name, kind=kind,
            detector=detector, severity=severity, statistic=statistic, threshold=threshold,
            summary=f"[{where}] {summary}", window=self._span(row), event_time_ms=row.time_ms,
            reference=feature.reference, details=dict(details), source=feature.source,
        )

    def _count(self, out: MonitorOutput, feature: _Feature, check: str, n: int) -> None:
        key = (feature_part(feature.source, feature.name), check)
        out.quality_counts[key] = out.quality_counts.get(key, 0) + n

    def _type_change(self, feature: _Feature, row: LocatedEvent, out: MonitorOutput, what: str) -> None:
        self._count(out, feature, Check.TYPE_CHANGE, 1)
        out.findings.append(self._finding(
            feature, Kind.DATA_QUALITY, Check.TYPE_CHANGE, Severity.CRITICAL, 1.0, 0.0, row,
            f"{self._noun(feature).capitalize()} was {feature.kind} but now receives {what}; "
            f"an upstream schema change is likely (those values are excluded from drift statistics).",
        ))

    def _invalid_value(self, feature: _Feature, row: LocatedEvent, out: MonitorOutput) -> None:
        self._count(out, feature, Check.INVALID_VALUE, 1)
        out.findings.append(self._finding(
            feature, Kind.DATA_QUALITY, Check.INVALID_VALUE, Severity.WARNING, 1.0, 0.0, row,
            f"{self._noun(feature).capitalize()} received arrays or objects, which the input contract does not allow; "
            f"they are counted and ignored.",
        ))

    def _drift_kind(self, feature: _Feature) -> str:
        return Kind.PREDICTION_DRIFT if feature.source == OUTPUTS else Kind.DATA_DRIFT

    def _drift_finding(self, feature: _Feature, det, shift: float, spread: float, row: LocatedEvent) -> Finding:
        noun = self._noun(feature)
        action = (f"check the upstream data for {feature.name}" if feature.source == FEATURES else
                  "check whether the inputs drifted too and whether the model's behaviour changed")
        direction = "up" if shift >= 0 else "down"
        if det.detector == PAGE_HINKLEY_SPREAD:
            change = "grew" if spread >= 1.0 else "shrank"
            # the spread CUSUM reads z², which a large mean shift raises too: say so
            moved = f", and its mean moved {direction} by about {abs(shift):.2f} reference sd" if abs(shift) >= 0.5 else ""
            # (the size over the values since the change began, by the CUSUM's estimate: where its sum last left 0)
            summary = (f"Spread of {noun} {change} to about {spread:.2f}× the reference{moved} "
                       f"since the change began (CUSUM on spread {det.statistic:.2f} > {det.threshold:.2f}); "
                       f"{action}.")
            critical = spread >= 2.0 or spread <= 0.5 or abs(shift) >= 1.0
        elif det.detector == PAGE_HINKLEY:
            summary = (f"Mean of {noun} moved {direction} by about {abs(shift):.2f} reference sd "
                       f"since the change began (Page-Hinkley {det.statistic:.2f} > {det.threshold:.2f}); "
                       f"{action}.")
            critical = abs(shift) >= 1.0
        else:
            summary = (f"ADWIN found a change in {noun}: recent mean is {shift:+.2f} reference sd from the reference "
                       f"(confidence delta {det.threshold:.2g}); {action}.")
            critical = abs(shift) >= 1.0
        return self._finding(
            feature, self._drift_kind(feature), det.detector, Severity.CRITICAL if critical else Severity.WARNING,
            float(det.statistic), float(det.threshold), row, summary,
            mean_shift_sd=round(shift, 4), spread_ratio=round(spread, 4),
        )

    def _category_finding(self, feature: _Feature, det: CategoryDetection, row: LocatedEvent) -> Finding:
        now = det.recent_frequency
        label = ("values outside the reference's categories" if det.category == "__other__"
                 else f"category '{det.category}'")
        action = (f"check the upstream data for {feature.name}" if feature.source == FEATURES else
                  "check whether the inputs drifted too and whether the model's behaviour changed")
        summary = (f"Frequency of {label} of {self._noun(feature)} went {'up' if det.up else 'down'} "
                   f"(reference {det.reference_frequency:.0%}, last 256 values {now:.0%}; category CUSUM "
                   f"{det.statistic:.2f} > {det.threshold:.2f}); {action}.")
        return self._finding(
            feature, self._drift_kind(feature), CATEGORY_CUSUM,
            Severity.CRITICAL if abs(now - det.reference_frequency) >= 0.25 else Severity.WARNING,
            float(det.statistic), float(det.threshold), row, summary,
            category=det.category, direction="up" if det.up else "down",
            reference_frequency=round(det.reference_frequency, 4), recent_frequency=round(now, 4),
        )

    # ---------------------------------------------------------------- windows
    def _close_window(self, out: MonitorOutput) -> None:
        """Run the windowed checks, emit summaries, start the next window."""
        if self._window_records == 0:
            return
        last_row = Row(self._window_last_offset or 0, self._window_last_time)
        for feature in self.features.values():
            if feature.records == 0 and feature.present == 0:
                continue
            out.summaries.append(self._window_feature(feature, last_row, out))
            feature._reset_window()
            if feature.numeric is not None:
                feature.numeric.reset_window()
            if feature.categorical is not None:
                feature.categorical.reset_window()
        self._window_records = 0
        self._window_first_offset = None
        self._window_first_time = None

    def _window_feature(self, feature: _Feature, last_row: LocatedEvent, out: MonitorOutput) -> dict[str, object]:
        s = self.settings
        found = out.findings
        span = self._span(last_row)
        records = feature.records
        missing = max(records - feature.present, 0)
        alpha = s.window_alpha(self.family, self._window_records)
        summary: dict[str, object] = {
            "type": "window_summary",
            "model": self.model,
            "model_version": self.model_version,
            "feature": feature.name,
            "source": feature.source,
            "feature_type": feature.kind or "unknown",
            "window": span.to_dict(),
            "reference": feature.reference,
            "records": records,
            "count": feature.present,
            "missing": missing,
            "missing_ratio": (missing / records) if records else None,
            "non_finite": feature.non_finite,
            "type_mismatches": feature.type_mismatch,
            "invalid_values": feature.invalid,
            "alpha": alpha,
        }
        ref_name = "the reference" if feature.profiled else "warm-up"
        # Missing rate and vanished features, against the reference missing rate.
        ref_complete = feature.profiled or feature.ref_records >= s.warmup
        if ref_complete and feature.ref_records and feature.scored_records >= s.min_window_values:
            if feature.present == 0 and feature.ref_missing < feature.ref_records:
                self._count(out, feature, Check.VANISHED_FEATURE, 1)
                found.append(self._finding(
                    feature, Kind.DATA_QUALITY, Check.VANISHED_FEATURE, Severity.CRITICAL,
                    1.0, 0.0, last_row,
                    f"{self._noun(feature).capitalize()} is missing from all {records} records of this window "
                    f"(it was present in {1 - feature.ref_missing / feature.ref_records:.0%} of {ref_name}); "
                    f"check whether the producer stopped sending it.",
                ))
            elif feature.scored_missing > 0:
                ref = [feature.ref_records - feature.ref_missing, feature.ref_missing]
                cur = [feature.scored_records - feature.scored_missing, feature.scored_missing]
                test = chi_square_two_sample(ref, cur, min_expected=0.5)
                ref_ratio = feature.ref_missing / feature.ref_records
                cur_ratio = feature.scored_missing / feature.scored_records
                summary["missing_p_value"] = test.p_value
                if cur_ratio > ref_ratio and test.p_value < alpha:
                    self._count(out, feature, Check.MISSING_RATE, 1)
                    threshold = chi_square_critical(alpha, 1)
                    found.append(self._finding(
                        feature, Kind.DATA_QUALITY, Check.MISSING_RATE,
                        Severity.CRITICAL if cur_ratio >= 0.5 else Severity.WARNING,
                        test.statistic, threshold, last_row,
                        f"{self._noun(feature).capitalize()} is missing in {cur_ratio:.1%} of records "
                        f"({ref_name}: {ref_ratio:.1%}; chi-square {test.statistic:.1f} > {threshold:.1f}); "
                        f"check the producer for dropped fields.",
                        missing_ratio=cur_ratio, reference_missing_ratio=ref_ratio, p_value=test.p_value,
                    ))
        if feature.numeric is not None:
            num = feature.numeric
            summary["warmed_up"] = num.warmed_up
            summary.update({k: v for k, v in num.window_moments.to_dict().items() if k != "count"})
            summary["quantiles"] = num.quantiles(window=True)
            summary["shape"] = window_shape(num.window_sketch)  # what `reference accept` rebuilds a profile from
            drift = num.window_drift()
            summary["drift"] = drift
            if num.warmed_up and num.window_moments.n >= s.min_window_values:
                feature.window_failed = self._numeric_window_test(feature, drift, alpha, last_row, found)
            self._heartbeat(out, feature, num.window_scored > 0, span, last_row)
        elif feature.categorical is not None:
            cat = feature.categorical
            scored = sum(cat.window_scored.values())
            summary["warmed_up"] = cat.warmed_up
            summary["categories"] = cat.top(20)
            summary["more_categories"] = more_categories(cat.window_counts, summary["categories"])  # for `reference accept`
            summary["distinct"] = len(cat.window_counts)
            summary["new_category_ratio"] = (cat.window_new / scored) if scored else None
            tested = cat.window_test() if scored >= s.min_window_values else None
            cat_drift: dict[str, object] = {}
            if tested is not None:
                chi, psi_value, js = tested
                cat_drift = {"chi_square": chi.statistic, "df": chi.df, "p_value": chi.p_value,
                             "psi": psi_value, "jensen_shannon": js}
                feature.window_failed = self._categorical_window_test(feature, chi, psi_value, js, alpha, last_row, found)
            elif scored:
                feature.window_failed = False
            summary["drift"] = cat_drift
            self._heartbeat(out, feature, scored > 0, span, last_row)
        return summary

    def _heartbeat(self, out: MonitorOutput, feature: _Feature, scored: bool, span: WindowSpan,
                   last_row: LocatedEvent) -> None:
        """At a window's end, the health of a feature that had values in it.

        Health is reported only here, where windows end (cut by count and event time, never by how the stream
        was batched), so the incidents it resolves do not depend on the batching either.  A feature turns
        "differs" only with a finding (a detection, a failed windowed test), which the incident sees anyway.
        """
        matches = self._matches(feature) if scored else None
        if matches is not None:
            out.health.append((len(out.findings), feature.source, feature.name, self._drift_kind(feature), matches,
                               last_row.time_ms, span))

    def _numeric_window_test(self, feature: _Feature, drift: dict[str, float | None], alpha: float,
                             last_row: LocatedEvent, found: list[Finding]) -> bool:
        """Alert when the configured distance crosses its threshold *and* the KS test is significant.

        The significance gate (at the model's family-wise level) keeps small
        windows from alerting on noise; the threshold keeps large windows from
        alerting on differences too small to matter.
        """
        test = self.settings.numeric_test
        value, p_value = drift.get(test) if test != "off" else None, drift.get("ks_p_value")
        threshold = self.settings.thresholds.get(test, math.inf)
        if value is None or p_value is None or value <= threshold or p_value >= alpha:
            return False
        shift = drift.get("mean_shift_sd")
        found.append(self._finding(
            feature, self._drift_kind(feature), test, Severity.CRITICAL if value >= 2 * threshold else Severity.WARNING,
            float(value), threshold, last_row,
            f"Distribution of {self._noun(feature)} moved from {feature.reference if feature.profiled else 'its warm-up'} "
            f"over this window: {_STAT_NAMES[test]} {value:.3f} > {threshold:g} (KS {drift.get('ks') or 0.0:.3f}, "
            f"p = {p_value:.2g} < {alpha:.2g}"
            + (f"; mean {shift:+.2f} reference sd" if isinstance(shift, float) else "")
            + f"); check the upstream data for {feature.name}.",
            ks=drift.get("ks"), ks_p_value=p_value, psi=drift.get("psi"), wasserstein_sd=drift.get("wasserstein_sd"),
            alpha=alpha,
        ))
        return True

    def _categorical_window_test(self, feature: _Feature, chi, psi_value: float, js: float, alpha: float,
                                 last_row: LocatedEvent, found: list[Finding]) -> bool:
        test = self.settings.categorical_test
        if test == "off" or chi.df == 0 or chi.p_value >= alpha:
            return False
        if test == "chi_square":
            statistic, threshold = chi.statistic, chi_square_critical(alpha, chi.df)
            critical = psi_value >= 0.25
        else:
            statistic = psi_value if test == "psi" else js
            threshold = self.settings.thresholds[test]
            if statistic <= threshold:
                return False
            critical = statistic >= 2 * threshold
        assert feature.categorical is not None
        moved = _most_changed(feature.categorical.reference, feature.categorical.window_scored)
        found.append(self._finding(
            feature, self._drift_kind(feature), test, Severity.CRITICAL if critical else Severity.WARNING,
            statistic, threshold, last_row,
            f"Category mix of {self._noun(feature)} changed ({_STAT_NAMES[test]} {statistic:.3g} > {threshold:.3g}; "
            f"chi-square p = {chi.p_value:.2g} < {alpha:.2g}, PSI {psi_value:.2f}, JS {js:.3f}); {moved}.",
            p_value=chi.p_value, chi_square=chi.statistic, psi=psi_value, jensen_shannon=js, alpha=alpha,
        ))
        return True


_STAT_NAMES = {"psi": "PSI", "ks": "KS", "wasserstein_sd": "Wasserstein (reference sd)",
               "jensen_shannon": "Jensen-Shannon", "chi_square": "chi-square"}


def _floats(values: list[object]) -> np.ndarray:
    """Numbers as doubles; an integer beyond a double's range becomes NaN (counted as ``non_finite``)."""
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        return np.array([_float(v) for v in values], dtype=np.float64)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.nan


def _most_changed(reference: dict[str, int], current: dict[str, int]) -> str:
    ref_total = sum(reference.values()) or 1
    cur_total = sum(current.values()) or 1
    names = set(reference) | set(current)
    name = max(names, key=lambda n: abs(current.get(n, 0) / cur_total - reference.get(n, 0) / ref_total))
    before = reference.get(name, 0) / ref_total
    after = current.get(name, 0) / cur_total
    return f"largest move: '{name}' {before:.0%} → {after:.0%}"


def process_blocks(work: Sequence[tuple[ModelMonitor, EventBlock]]) -> list[MonitorOutput]:
    """Each monitor's :meth:`ModelMonitor.steps` over its block, all together: the numeric state updates
    of a round of chunks (of every monitor) go through one :func:`update_many` call.  Monitors are
    independent, so each one's output is what it would be alone."""
    outputs: list[MonitorOutput] = []
    live: list[tuple[Generator[list, list, None], list]] = []
    for monitor, block in work:
        out = MonitorOutput([], [], {})
        outputs.append(out)
        steps = monitor.steps(block, out)
        try:
            live.append((steps, next(steps)))
        except StopIteration:
            pass
    while live:
        detected = update_many([update for _, updates in live for update in updates])
        following = []
        at = 0
        for steps, updates in live:
            part = detected[at:at + len(updates)]
            at += len(updates)
            try:
                following.append((steps, steps.send(part)))
            except StopIteration:
                pass
        live = following
    return outputs

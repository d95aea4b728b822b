"""Build reference profiles from decoded events (no I/O: files are read elsewhere).

Values are classified exactly as the live monitor classifies them: a feature's
type is set by its first non-null value; numbers (not booleans) are numeric;
strings and booleans are categorical (``"true"`` / ``"false"``); NaN and
infinities are counted as non-finite and values of the other type as type
mismatches, and both count as missing.  A feature absent from an event that
carries its source (``features`` or ``prediction``) is missing in that event,
including events before the feature was first seen.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from driftline.contract.columns import FEATURES, OUTPUTS, Column, LocatedEvent, columns
from driftline.contract.event import InferenceEvent
from driftline.reference.profile import (
    CATEGORICAL, MAX_PROFILE_CATEGORIES, NUMERIC, PROFILE_KLL_K, FeatureProfile, ReferenceProfile, fold_categories,
)

__all__ = ["ProfileBuilder", "ColumnValues"]

_NUMBER_TYPES = frozenset((int, float))


class ColumnValues(NamedTuple):
    """The values of one column of a table batch, already classified.

    ``numbers``: the finite values of a numeric column; ``labels``: the
    category counts of any other column; ``present``: rows with a value.
    """

    numbers: np.ndarray | None
    labels: Counter[str] | None
    present: int


class ProfileBuilder:
    """Accumulates one profile per model version found in the events given to :meth:`add`.

    >>> b = ProfileBuilder()
    >>> b.add([InferenceEvent("m", "v1", None, None, {"x": float(i), "c": "ab"[i % 2]}, {"prediction": 0.5})
    ...        for i in range(10)])
    >>> p = b.profiles[("m", "v1")]
    >>> p.records, p.features[("features", "x")].moments.mean, p.features[("features", "c")].categories
    (10, 4.5, {'a': 5, 'b': 5})
    """

    def __init__(self, *, kll_k: int = PROFILE_KLL_K, max_categories: int = MAX_PROFILE_CATEGORIES) -> None:
        self.kll_k = kll_k
        self.max_categories = max_categories
        self.profiles: dict[tuple[str, str], ReferenceProfile] = {}

    def add(self, events: Iterable[InferenceEvent]) -> None:
        """Add a batch of events (of any model versions)."""
        groups: dict[tuple[str, str], list[LocatedEvent]] = {}
        for i, event in enumerate(events):
            groups.setdefault((event.model, event.model_version), []).append(LocatedEvent(i, event))
        for key, chunk in groups.items():
            profile = self.profiles.get(key)
            if profile is None:
                profile = self.profiles[key] = ReferenceProfile(key[0], key[1])
            self._add(profile, chunk)

    def _add(self, profile: ReferenceProfile, chunk: Sequence[LocatedEvent]) -> None:
        cols, n_source = columns(chunk)
        present: dict[tuple[str, str], int] = {}
        for key, col in cols.items():
            feature = profile.features.get(key)
            if feature is None:
                kind = _kind_of(col)
                if kind is None:
                    continue  # only nulls so far: type unknown, counted once a value arrives
                feature = FeatureProfile.empty(key[1], key[0], kind, kll_k=self.kll_k)
                feature.records = profile.source_records[key[0]]  # earlier records lacked it
                profile.features[key] = feature
            present[key] = self._update(feature, col)
        for key, feature in profile.features.items():
            feature.records += n_source[key[0]]
        for source, n in n_source.items():
            profile.source_records[source] += n
        profile.records += len(chunk)

    def _update(self, feature: FeatureProfile, col: Column) -> int:
        values = col.values
        if feature.kind == NUMERIC:
            if set(map(type, values)) <= _NUMBER_TYPES:
                nums = np.array(values, dtype=np.float64)
            else:
                raw = []
                for v in values:
                    t = type(v)
                    if t is float or t is int:
                        raw.append(v)
                    elif v is not None:
                        feature.type_mismatch += 1
                nums = np.array(raw, dtype=np.float64)
            finite = np.isfinite(nums)
            if not finite.all():
                feature.non_finite += int((~finite).sum())
                nums = nums[finite]
            feature.add_values(nums)
            feature.count += int(nums.size)
            return int(nums.size)
        cats: list[str] = []
        for v in values:
            t = type(v)
            if t is str:
                cats.append(v)  # type: ignore[arg-type]
            elif t is bool:
                cats.append("true" if v else "false")
            elif t is float and not math.isfinite(v):  # type: ignore[arg-type]
                feature.non_finite += 1
            elif v is not None:
                feature.type_mismatch += 1
        counts = feature.categories
        assert counts is not None
        for name, n in Counter(cats).items():
            counts[name] = counts.get(name, 0) + n
        if len(counts) > 4 * self.max_categories:  # fold now and then, not per batch
            feature.categories = fold_categories(counts, self.max_categories)
        feature.count += len(cats)
        return len(cats)

    def add_columns(self, model: str, model_version: str, rows: int, features: Mapping[str, ColumnValues],
                    outputs: Mapping[str, ColumnValues] | ColumnValues | None, output_rows: int | None = None) -> None:
        """Add a table batch given column by column (what :meth:`add` does for ``rows`` events).

        Every row carries the features; a row carries the prediction when it
        has a value (as a replay of the table would send it).  ``outputs``: the
        output columns by output name (``prediction``, or named outputs such as
        ``prediction.score``), or one column, the scalar ``prediction``;
        ``output_rows``: the rows with a value in any of them (default: the
        values of a single output).
        """
        profile = self.profiles.get((model, model_version))
        if profile is None:
            profile = self.profiles[(model, model_version)] = ReferenceProfile(model, model_version)
        if isinstance(outputs, ColumnValues):
            outputs = {OUTPUTS: outputs}
        outputs = outputs or {}
        if output_rows is None:
            if len(outputs) > 1:
                raise ValueError("several outputs: say how many rows carry any of them (output_rows)")
            output_rows = sum(col.present for col in outputs.values())
        n_source = {FEATURES: rows, OUTPUTS: output_rows}
        given = {(FEATURES, name): col for name, col in features.items()}
        given.update(((OUTPUTS, name), col) for name, col in outputs.items())
        for key, col in given.items():
            feature = profile.features.get(key)
            if feature is None:
                if col.present == 0:
                    continue  # only nulls so far: type unknown
                feature = FeatureProfile.empty(key[1], key[0], NUMERIC if col.numbers is not None else CATEGORICAL,
                                               kll_k=self.kll_k)
                feature.records = profile.source_records[key[0]]
                profile.features[key] = feature
            if col.numbers is not None:
                if feature.kind != NUMERIC:
                    feature.type_mismatch += col.present
                    continue
                feature.add_values(col.numbers)
                feature.count += int(col.numbers.size)
            else:
                assert col.labels is not None
                if feature.kind != CATEGORICAL:
                    feature.type_mismatch += col.present
                    continue
                counts = feature.categories
                assert counts is not None
                for name, n in col.labels.items():
                    counts[name] = counts.get(name, 0) + n
                feature.count += col.present
        for key, feature in profile.features.items():
            feature.records += n_source[key[0]]
        for source, n in n_source.items():
            profile.source_records[source] += n
        profile.records += rows

    def result(self) -> list[ReferenceProfile]:
        """The profiles built so far, categories folded to the cap."""
        for profile in self.profiles.values():
            for feature in profile.features.values():
                if feature.categories is not None:
                    feature.categories = fold_categories(feature.categories, self.max_categories)
        return list(self.profiles.values())


def _kind_of(col: Column) -> str | None:
    first = next((v for v in col.values if v is not None), None)
    if first is None:
        return None
    return NUMERIC if type(first) in _NUMBER_TYPES else CATEGORICAL

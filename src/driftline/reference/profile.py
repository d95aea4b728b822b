"""A reference profile: what one model version's inputs and outputs looked like.

Built from a training or evaluation set (``driftline reference build``) and
published on the compacted topic ``driftline.references`` keyed by
``model/model_version``; workers compare the live stream with it instead of
with their first minutes of traffic.

Per feature (and per output) a profile holds the type, how many records
carried the feature's source, how many valid values it had (the rest were
missing, non-finite or of the wrong type), moments, and either a KLL quantile
sketch (numeric) or category counts (categorical).

Profiles merge: building from shards and merging gives the profile of one pass
over all of them, exactly for counts and moments and within the sketch's rank
error for quantiles.  They serialise to JSON (``format: driftline.reference/1``)
with each sketch as base64 of its Apache DataSketches bytes, so any
DataSketches library can read it.

The ``id`` names the data, not the build: it hashes the counts, the category
counts, each numeric feature's exact minimum and maximum and its
:class:`~driftline.stats.digest.ValueDigest` (a multiset hash of the values),
never the sketch bytes (KLL compaction is random) nor the mean and variance
(float sums round differently in another row order).  So the same rows give
the same id whatever the order, the sharding or the sketch's randomness, and
a changed value changes it.  Alerts name the reference as ``profile@<id>``.
The ``checksum`` hashes the whole serialised content, sketch included: a
profile edited or truncated after it was written is refused.  (Profiles written
before numeric features carried a ``digest`` keep the id they were published
with: a hash of the content including the sketch bytes.)
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import orjson
from datasketches import kll_doubles_sketch

from driftline.contract.columns import FEATURES, OUTPUTS
from driftline.errors import ProfileError
from driftline.state.checkpoint import CheckpointError
from driftline.state.native import check_kll
from driftline.stats.digest import ValueDigest
from driftline.stats.moments import Moments

__all__ = [
    "FeatureProfile", "ReferenceProfile", "PROFILE_FORMAT", "PROFILE_KLL_K", "MAX_PROFILE_CATEGORIES",
    "NUMERIC", "CATEGORICAL", "OTHER",
]

PROFILE_FORMAT = "driftline.reference/1"
#: KLL accuracy parameter of profile sketches: 0.68 % normalised rank error
#: (99 % confidence), about 10 KB per feature serialised at a million values.
PROFILE_KLL_K = 400
#: Category names kept per categorical feature; rarer ones are folded into ``OTHER``.
MAX_PROFILE_CATEGORIES = 1000
NUMERIC = "numeric"
CATEGORICAL = "categorical"
OTHER = "__other__"
_SOURCES = (FEATURES, OUTPUTS)


@dataclass(slots=True, eq=False)
class FeatureProfile:
    """The reference of one feature (``source`` ``features``) or output (``prediction``)."""

    name: str
    source: str
    kind: str
    #: records of the feature's source in the reference data
    records: int = 0
    #: valid values (finite numbers, or category names)
    count: int = 0
    non_finite: int = 0
    type_mismatch: int = 0
    moments: Moments = field(default_factory=Moments)
    sketch: kll_doubles_sketch | None = None
    categories: dict[str, int] | None = None
    #: numeric: multiset hash of the valid values (None in profiles written before it existed)
    digest: ValueDigest | None = None

    @classmethod
    def empty(cls, name: str, source: str, kind: str, *, kll_k: int = PROFILE_KLL_K) -> "FeatureProfile":
        if kind == NUMERIC:
            return cls(name, source, kind, sketch=kll_doubles_sketch(kll_k), digest=ValueDigest())
        if kind == CATEGORICAL:
            return cls(name, source, kind, categories={})
        raise ProfileError(f"unknown feature type {kind!r} for {name!r}")

    def add_values(self, values: np.ndarray) -> None:
        """Add finite values of a numeric feature (moments, sketch, digest; not the counts)."""
        if values.size:
            self.moments.update(values)
            assert self.sketch is not None
            self.sketch.update(values)
            if self.digest is not None:
                self.digest = self.digest + ValueDigest.of(values)

    @property
    def missing(self) -> int:
        """Records without a valid value (absent, null, non-finite or of the wrong type)."""
        return self.records - self.count

    @property
    def missing_ratio(self) -> float | None:
        return self.missing / self.records if self.records else None

    def merge(self, other: "FeatureProfile") -> "FeatureProfile":
        """A new profile of both streams together."""
        if (other.name, other.source) != (self.name, self.source):
            raise ProfileError(f"cannot merge feature {other.name!r} into {self.name!r}")
        if other.kind != self.kind:
            raise ProfileError(f"feature {self.name!r} is {self.kind} in one profile and {other.kind} in the other")
        out = FeatureProfile(self.name, self.source, self.kind, self.records + other.records, self.count + other.count,
                             self.non_finite + other.non_finite, self.type_mismatch + other.type_mismatch,
                             self.moments + other.moments)
        if self.kind == NUMERIC:
            assert self.sketch is not None and other.sketch is not None
            sketch = kll_doubles_sketch.deserialize(self.sketch.serialize())
            sketch.merge(other.sketch)
            out.sketch = sketch
            out.digest = self.digest + other.digest if self.digest is not None and other.digest is not None else None
        else:
            merged = dict(self.categories or {})
            for name, n in (other.categories or {}).items():
                merged[name] = merged.get(name, 0) + n
            out.categories = fold_categories(merged, MAX_PROFILE_CATEGORIES)
        return out

    def with_missing_records(self, n: int) -> "FeatureProfile":
        """The same profile with ``n`` more records in which the feature was absent."""
        out = self.merge(FeatureProfile.empty(self.name, self.source, self.kind))
        out.records += n
        return out

    def to_dict(self) -> dict[str, object]:
        m = self.moments
        doc: dict[str, object] = {
            "name": self.name, "source": self.source, "type": self.kind,
            "records": self.records, "count": self.count, "missing": self.missing,
            "missing_ratio": self.missing_ratio, "non_finite": self.non_finite, "type_mismatches": self.type_mismatch,
        }
        if self.kind == NUMERIC:
            assert self.sketch is not None
            doc["moments"] = {"n": m.n, "mean": m.mean, "m2": m.m2,
                              "min": m.min if m.n else None, "max": m.max if m.n else None,
                              "sd": m.sd if m.n else None}
            if not self.sketch.is_empty():
                # KLL sorts its first level on the first query, which changes its
                # bytes; serialise the sorted form so the id never depends on
                # whether the sketch was read before.
                self.sketch.get_quantiles([0.5])
            doc["kll"] = base64.b64encode(self.sketch.serialize()).decode("ascii")
            if self.digest is not None:
                doc["digest"] = self.digest.hex()
        else:
            cats = self.categories or {}
            doc["categories"] = {k: cats[k] for k in sorted(cats, key=lambda k: (-cats[k], k))}
        return doc

    def identity(self) -> dict[str, object] | None:
        """What the profile id hashes of this feature: data only (None: a numeric feature without a digest)."""
        doc: dict[str, object] = {
            "name": self.name, "source": self.source, "type": self.kind, "records": self.records, "count": self.count,
            "non_finite": self.non_finite, "type_mismatches": self.type_mismatch,
        }
        if self.kind == NUMERIC:
            if self.digest is None:
                return None
            m = self.moments
            # min and max are exact whatever the order; -0.0 is 0.0 (as in the digest)
            doc.update(n=m.n, digest=self.digest.hex(), min=m.min + 0.0 if m.n else None, max=m.max + 0.0 if m.n else None)
        else:
            doc["categories"] = dict(self.categories or {})
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> "FeatureProfile":
        """Read one feature entry, or raise :class:`ProfileError`.

        A profile may come from anyone who can write the references topic, so
        every number is checked to be what a builder could have written (counts
        whole and within 0..2**63-1, moments finite, ``m2`` not negative), and
        the sketch's bytes are checked by :func:`driftline.state.native.check_kll`
        before DataSketches reads them (it trusts its input: mutated bytes
        crash the process).
        """
        try:
            name, source, kind = str(doc["name"]), str(doc["source"]), str(doc["type"])
            if source not in _SOURCES:
                raise ProfileError(f"feature {name!r} has unknown source {source!r}")
            out = cls(name, source, kind, _count(doc["records"]), _count(doc["count"]),
                      _count(doc.get("non_finite", 0)), _count(doc.get("type_mismatches", 0)))
            if kind == NUMERIC:
                mom = doc["moments"]
                assert isinstance(mom, dict)
                n = _count(mom["n"])
                out.moments = Moments(n, _finite(mom["mean"]), _finite(mom["m2"]),
                                      _finite(mom["min"]) if n else Moments().min, _finite(mom["max"]) if n else Moments().max)
                if out.moments.m2 < 0 or (n and not out.moments.min <= out.moments.max):
                    raise ProfileError(f"feature {name!r}: moments are not those of any data")
                data = base64.b64decode(str(doc["kll"]), validate=True)
                try:
                    check_kll(data)
                except CheckpointError:
                    raise ProfileError(f"feature {name!r}: the quantile sketch ('kll') is malformed") from None
                out.sketch = kll_doubles_sketch.deserialize(data)
                if out.count and out.sketch.is_empty():
                    raise ProfileError(f"feature {name!r}: {out.count} values but an empty quantile sketch")
                if "digest" in doc:
                    try:
                        out.digest = ValueDigest.from_hex(doc["digest"])  # type: ignore[arg-type]
                    except ValueError:
                        raise ProfileError(f"feature {name!r}: 'digest' must be 32 lower-case hex digits") from None
            elif kind == CATEGORICAL:
                cats = doc["categories"]
                assert isinstance(cats, dict)
                out.categories = {str(k): _count(v) for k, v in cats.items()}
                if out.count and not any(out.categories.values()):
                    raise ProfileError(f"feature {name!r}: {out.count} values but no category counted")
            else:
                raise ProfileError(f"feature {name!r} has unknown type {kind!r}")
        except ProfileError:
            raise
        except Exception as exc:  # whatever a forged entry trips over is a malformed entry
            raise ProfileError(f"malformed feature entry {str(doc.get('name'))[:200]!r}: {type(exc).__name__}") from None
        if out.count > out.records:
            raise ProfileError(f"feature {out.name!r}: count {out.count} is not within 0..records ({out.records})")
        return out


#: Largest count a profile may hold (what JSON readers and the profile id's encoder take as an integer).
_MAX_COUNT = 2**63 - 1


def _count(value: object) -> int:
    """A count of a profile: a whole number within 0..2**63-1 (a float that is whole is taken)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= _MAX_COUNT:
        raise ProfileError(f"a count must be a whole number within 0..{_MAX_COUNT}, not {str(value)[:40]}")
    return value


def _finite(value: object) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ProfileError(f"a moment must be a finite number, not {str(value)[:40]}")
    return float(value)  # type: ignore[arg-type]


def fold_categories(counts: dict[str, int], limit: int) -> dict[str, int]:
    """Keep the ``limit - 1`` most frequent names; fold the rest into ``OTHER``."""
    if len(counts) <= limit:
        return counts
    ranked = sorted((k for k in counts if k != OTHER), key=lambda k: (-counts[k], k))
    kept = {k: counts[k] for k in ranked[: limit - 1]}
    kept[OTHER] = counts.get(OTHER, 0) + sum(counts[k] for k in ranked[limit - 1:])
    return kept


@dataclass(slots=True, eq=False)
class ReferenceProfile:
    """Reference of one model version: its features and outputs."""

    model: str
    model_version: str
    #: events in the reference data, and how many carried features / a prediction
    records: int = 0
    source_records: dict[str, int] = field(default_factory=lambda: {FEATURES: 0, OUTPUTS: 0})
    features: dict[tuple[str, str], FeatureProfile] = field(default_factory=dict)
    #: informational: when it was built and from what (not part of the id)
    created_at: str | None = None
    origin: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Key on the references topic: ``model/model_version``."""
        return f"{self.model}/{self.model_version}"

    @property
    def id(self) -> str:
        """Hash of the data: the same rows give the same id (in any order, sharded or not)."""
        return self._id(self._content())

    def _id(self, content: dict[str, object]) -> str:
        features = [self.features[k].identity() for k in sorted(self.features)]
        if any(f is None for f in features):  # a profile written before digests: the id it was published with
            return _hash(content, 6)
        return _hash({"id_scheme": 2, "format": PROFILE_FORMAT, "model": self.model, "model_version": self.model_version,
                      "records": self.records, "source_records": dict(self.source_records), "features": features}, 6)

    @property
    def name(self) -> str:
        """How alerts name this reference: ``profile@<id>``."""
        return f"profile@{self.id}"

    def merge(self, other: "ReferenceProfile") -> "ReferenceProfile":
        """The profile of both inputs together (same model version only)."""
        if other.key != self.key:
            raise ProfileError(f"cannot merge the profile of {other.key!r} into that of {self.key!r}")
        features: dict[tuple[str, str], FeatureProfile] = {}
        for key in sorted(set(self.features) | set(other.features)):
            mine, theirs = self.features.get(key), other.features.get(key)
            source = key[0]
            if mine is None:
                assert theirs is not None
                features[key] = theirs.with_missing_records(self.source_records.get(source, 0))
            elif theirs is None:
                features[key] = mine.with_missing_records(other.source_records.get(source, 0))
            else:
                features[key] = mine.merge(theirs)
        return ReferenceProfile(
            self.model, self.model_version, self.records + other.records,
            {s: self.source_records.get(s, 0) + other.source_records.get(s, 0) for s in _SOURCES},
            features, _now(), sorted(set(self.origin) | set(other.origin)),
        )

    def _content(self) -> dict[str, object]:
        return {
            "format": PROFILE_FORMAT,
            "model": self.model,
            "model_version": self.model_version,
            "records": self.records,
            "source_records": dict(self.source_records),
            "features": [self.features[k].to_dict() for k in sorted(self.features)],
        }

    def to_dict(self) -> dict[str, object]:
        doc = self._content()
        profile_id = self._id(doc)
        doc["checksum"] = _hash(doc, 16)
        doc["id"] = profile_id
        doc["created_at"] = self.created_at
        doc["origin"] = list(self.origin)
        return doc

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "ReferenceProfile":
        """Read a serialised profile, or raise :class:`ProfileError` saying what is wrong."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ProfileError(f"not a JSON reference profile: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: object) -> "ReferenceProfile":
        if not isinstance(doc, dict):
            raise ProfileError("a reference profile must be a JSON object")
        fmt = doc.get("format")
        if fmt != PROFILE_FORMAT:
            raise ProfileError(f"unsupported reference profile format {fmt!r}; this driftline reads {PROFILE_FORMAT!r}")
        try:
            model, version = doc["model"], doc["model_version"]
            if not isinstance(model, str) or not isinstance(version, str) or not model or not version:
                raise ProfileError("'model' and 'model_version' must be non-empty strings")
            source_records = {s: _count(doc["source_records"].get(s, 0)) for s in _SOURCES}
            entries = doc["features"]
            if not isinstance(entries, list):
                raise ProfileError("'features' must be a list")
            features = {}
            for entry in entries:
                if not isinstance(entry, dict):
                    raise ProfileError("every entry of 'features' must be an object")
                f = FeatureProfile.from_dict(entry)
                features[(f.source, f.name)] = f
            created = doc.get("created_at")
            profile = cls(model, version, _count(doc["records"]), source_records, features,
                          created if isinstance(created, str) else None, [str(o) for o in doc.get("origin") or []])
            content = profile._content()
            profile_id = profile._id(content)
            checksum = _hash(content, 16) if "checksum" in doc else None
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"malformed reference profile: missing or invalid {str(exc)[:200]}") from None
        stated = doc.get("id")
        if stated is not None and stated != profile_id:
            raise ProfileError(f"reference profile id {str(stated)[:40]!r} does not match its content ({profile_id!r}); "
                               f"the profile was altered or truncated")
        if checksum is not None and doc.get("checksum") != checksum:
            raise ProfileError("reference profile checksum does not match its content; the profile was altered or truncated")
        return profile


def _hash(doc: dict[str, object], size: int) -> str:
    return hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=size).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

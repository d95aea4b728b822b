"""The checkpoint payload: a data-only encoding of a :class:`PartitionState`.

Decoding builds plain values first and then the state objects, by code of this
module, from an exact registry of classes.  Nothing in the payload names a
module, a function or anything importable: an object is written as the index
of a registered class in the payload's class table and the values of its
attributes, and is rebuilt with ``object.__new__`` plus those attributes
(never ``__init__``, ``__setstate__`` or ``__reduce__`` of the class).
Natively implemented parts are rebuilt through fixed calls: numpy arrays from
raw bytes of an allowed numeric dtype, KLL sketches and river's ADWIN windows
from their own serialisation once :mod:`driftline.state.native` has checked
every byte, and numpy generators from their bit generator's state (PCG64 only).

Layout::

    u64 big-endian length of J | J: JSON (orjson) | B: bytes of arrays, sketches, windows, generators

J is ``[classes, state]``.  ``classes`` lists ``[alias, [attribute, ...]]``
for every class the state uses; each must equal this worker's registry
exactly (else the checkpoint is rejected, naming the class), so attribute
names are written once and objects positionally.  In ``state``, JSON
scalars are themselves, JSON objects are dicts with string keys, and every
array is a node:

=========================  ====================================================
``[i, v, ...]``            object (or named tuple) of class ``classes[i]``, one value per attribute
``["l", v, ...]``          list
``["t", v, ...]``          tuple
``["d", k, v, ...]``       dict whose keys are not all strings (or one starts with NUL)
``["C", dict]``            ``collections.Counter``
``["D", dict]``            ``collections.OrderedDict``
``["i", "digits"]``        int outside [-2**63, 2**64)
``["f", "nan"]``           non-finite float (``nan``, ``inf``, ``-inf``)
``["s", n]``               str that is not valid UTF-8 (lone surrogates): n bytes of B
``["b", n]``               bytes: n bytes of B
``["a", dtype, shape]``    numpy array; its bytes are the next ones of B
``["x", dtype]``           numpy scalar
``["k", n]``               KLL doubles sketch: n bytes of B
``["g", "PCG64"]``         numpy Generator: state and increment (u128), has_uint32, uinteger (u32) in 40 bytes of B
``["w", n]``               river ADWIN's window, n bytes of B (only as ``ADWIN._helper``)
``["m", name]``            a method of the object being built, bound to it (only of a class registered with methods: none now)
``["r", label]``           the object labelled ``label`` earlier
=========================  ====================================================

Objects (not named tuples), lists, dicts, counters, arrays, sketches and
generators take an optional last element ``["@", label]`` (a dict written as a
JSON object: the key ``"\x00@"``) when the same object is referenced again
later (``r``), so sharing survives the round trip.  A reference to an object
not complete yet (a cycle) is refused both ways.  B
is consumed in document order and must be used up exactly.  Every failure
is a :class:`~driftline.state.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import inspect
import math
import struct
import types
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import orjson
from datasketches import kll_doubles_sketch
from numpy.random import PCG64, Generator

from driftline import collector
from driftline.contract.names import is_utf8
from driftline.state.checkpoint import CheckpointError, PartitionState
from driftline.state.native import check_adwin_state, check_kll

__all__ = ["encode_payload", "decode_payload", "registry", "ClassSpec", "MAX_DEPTH"]

#: nesting depth of the JSON part (a real state: about 20)
MAX_DEPTH = 64
_LENGTH = struct.Struct(">Q")
_JSON_INT_MIN, _JSON_INT_MAX = -(2 ** 63), 2 ** 64 - 1  # what orjson reads back as int
_MAX_BIG_INT_DIGITS = 100
_GENERATOR = struct.Struct("<QQQQII")  # state lo, hi, inc lo, hi, has_uint32, uinteger
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: numpy dtypes an array (or scalar) of the state may have: numbers and booleans, never objects
_DTYPES = {d.str: d for d in map(np.dtype, ("<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1",
                                             "|b1"))}
_MAX_DIMS = 4
_MAX_DIM = 2 ** 40
_SCALARS = (str, float, int, bool, type(None))


# ------------------------------------------------------------------ registry
@dataclass(frozen=True, slots=True)
class ClassSpec:
    """How one registered class is written and rebuilt."""

    alias: str
    cls: type
    #: attribute names kept in slots (set with ``object.__setattr__``, which uses the slot descriptor)
    slots: frozenset[str]
    #: attribute names kept in the instance ``__dict__`` (set in the dict directly)
    dict_names: frozenset[str]
    #: the class defines ``__getstate__``: its dict is what is written
    getstate: bool
    #: names of the class's methods an attribute may hold bound to the object itself
    methods: frozenset[str] = frozenset()
    #: named tuple: its field names, in order
    fields: tuple[str, ...] | None = None
    #: checks the rebuilt object (raises CheckpointError)
    check: Callable[[Any], None] | None = None

    #: every attribute (slots and dict)
    names: frozenset[str] = frozenset()
    #: the attributes (fields of a named tuple) in the order their values are written
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", self.slots | self.dict_names)
        object.__setattr__(self, "order", self.fields if self.fields is not None else tuple(sorted(self.names)))


class Registry:
    def __init__(self, specs: list[ClassSpec]) -> None:
        self.by_alias = {s.alias: s for s in specs}
        self.by_type = {s.cls: s for s in specs}
        if len(self.by_alias) != len(specs) or len(self.by_type) != len(specs):
            raise AssertionError("checkpoint registry: aliases and classes must be unique")


def _slot_names(cls: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = vars(klass).get("__slots__", ())
        names.update([slots] if isinstance(slots, str) else slots)
    return frozenset(names - {"__dict__", "__weakref__"})


def _spec(cls: type, prototype: Callable[[], object] | None = None, *, methods: tuple[str, ...] = (),
          check: Callable[[Any], None] | None = None) -> ClassSpec:
    if cls.__new__ is not object.__new__ or (vars(cls).get("__del__") is not None):
        raise AssertionError(f"checkpoint registry: {cls.__qualname__} has its own __new__ or __del__")
    slots = _slot_names(cls)
    # the class's own __getstate__ (one that dataclasses add for slots is not: it returns a list)
    own = vars(cls).get("__getstate__")
    getstate = own is not None and getattr(own, "__qualname__", "").startswith(cls.__qualname__ + ".")
    has_dict = any("__dict__" in vars(k) for k in cls.__mro__ if k is not object)
    dict_names: frozenset[str] = frozenset()
    if has_dict:
        if prototype is None:
            raise AssertionError(f"checkpoint registry: {cls.__qualname__} keeps a __dict__ and needs a prototype")
        proto = prototype()
        dict_names = frozenset(proto.__getstate__() if getstate else vars(proto)) - slots
    for name in slots:
        if type(inspect.getattr_static(cls, name)) is not types.MemberDescriptorType:
            raise AssertionError(f"checkpoint registry: {cls.__qualname__}.{name} is not a plain slot")
    for name in methods:
        if not inspect.isfunction(inspect.getattr_static(cls, name)):
            raise AssertionError(f"checkpoint registry: {cls.__qualname__}.{name} is not a method")
    return ClassSpec(cls.__qualname__, cls, slots, dict_names, getstate, frozenset(methods), check=check)


def _namedtuple(cls: type) -> ClassSpec:
    return ClassSpec(cls.__qualname__, cls, frozenset(), frozenset(), False, fields=tuple(cls._fields))


def _check_partition_state(state: PartitionState) -> None:
    from driftline.detection.alerts import _KeyState
    from driftline.detection.monitor import ModelMonitor
    from driftline.detection.outcomes import OutcomeMonitor

    ok = (type(state.topic) is str and type(state.partition) is int and type(state.offset) is int
          and state.offset >= 0 and type(state.written_at_ms) is int
          and (state.watermark_ms is None or type(state.watermark_ms) in (int, float))
          and type(state.monitors) is list and all(type(m) is ModelMonitor for m in state.monitors)
          and type(state.outcomes) is list and all(type(m) is OutcomeMonitor for m in state.outcomes)
          and type(state.alerts) is list
          and all(type(a) is tuple and len(a) == 2 and type(a[0]) is str and type(a[1]) is _KeyState
                  for a in state.alerts))
    if not ok:
        raise CheckpointError("checkpoint holds a partition state of the wrong shape")


def _check_numeric_state(state: Any) -> None:
    """The tie-breaking generator of a numeric state: built (a Generator) or not yet (its seed, a u64), and the
    draws skipped since (an int of at most 100 digits, as every int of a checkpoint: advance wraps it)."""
    if not (type(state._seed) is int and 0 <= state._seed < 2 ** 64 and type(state._skipped) is int
            and state._skipped >= 0 and (state._rng is None or type(state._rng) is Generator)):
        raise CheckpointError("checkpoint holds a numeric state with a malformed random generator")


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The classes a checkpoint may contain (built once; imports only modules of driftline and river)."""
    global _REGISTRY
    if _REGISTRY is None:
        from river import drift, stats

        from driftline.detection.alerts import _KeyState
        from driftline.detection.findings import Finding, WindowSpan
        from driftline.detection.monitor import ModelMonitor, _Feature
        from driftline.detection.outcomes import (ModelRules, OutcomeMonitor, OutcomeSettings, _ErrorDrift, _Pair,
                                                  _Prediction, _Version)
        from driftline.detection.settings import MonitorSettings
        from driftline.state.categorical import CategoricalState
        from driftline.state.detectors import CategoryCusums, CusumBank, DetectorParams, NumericDetectors, _Walk
        from driftline.state.numeric import NumericState
        from driftline.stats.distance import WindowCounts
        from driftline.stats.moments import Moments
        from driftline.stats.performance import ClassificationStats, RegressionStats, RunningMean
        from driftline.stats.pit import QuantileGrid

        def monitor() -> object:
            return ModelMonitor(topic="", partition=0, model="", model_version="",
                                settings=MonitorSettings.calibrated(false_alarm_rate=1e-3))

        def outcome() -> object:
            return OutcomeMonitor(topic="", partition=0, model="", settings=OutcomeSettings(
                labels_topic="", join_window_ms=0.0, max_pending=1, false_alarm_rate=1e-3, window_events=1,
                window_seconds=None))

        _REGISTRY = Registry([
            _spec(PartitionState, check=_check_partition_state),
            _spec(ModelMonitor, monitor), _spec(_Feature), _spec(NumericState, check=_check_numeric_state),
            _spec(CategoricalState),
            _spec(NumericDetectors), _spec(CategoryCusums), _spec(CusumBank), _spec(_Walk), _spec(DetectorParams),
            _spec(Moments), _spec(QuantileGrid), _spec(WindowCounts),
            _spec(_KeyState), _spec(Finding), _spec(WindowSpan),
            _spec(OutcomeMonitor, outcome), _spec(ModelRules), _spec(_Version), _spec(_ErrorDrift), _spec(_Pair),
            _spec(ClassificationStats), _spec(RegressionStats), _spec(RunningMean), _namedtuple(_Prediction),
            _spec(drift.ADWIN, drift.ADWIN),
            _spec(stats.Mean, stats.Mean),
        ])
    return _REGISTRY


def _window_type() -> type:
    from river._river_rust.drift import AdaptiveWindowing
    return AdaptiveWindowing


def _adwin_class() -> type:
    from river.drift import ADWIN
    return ADWIN


# ------------------------------------------------------------------ encoding
class _Label(list):
    """A node's label, ``["@", n]``: the last element of a node referenced again later."""


#: the key that labels a dict written as a JSON object (such dicts have no key starting with NUL)
_LABEL_KEY = "\x00@"


class _Encoder:
    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.blobs: list[bytes | memoryview] = []
        self.classes: dict[str, int] = {}
        self.table: list[list] = []
        #: id -> node of every object and mutable container written (labelled on a second reference)
        self.nodes: dict[int, list | dict] = {}
        #: ids of those whose values are being written (a reference to one of them is a cycle)
        self.open: set[int] = set()
        self.label_of: dict[int, int] = {}
        #: what __getstate__ returned: alive until the end, so no id above is reused
        self.keep: list[dict] = []
        self.window_type = _window_type()
        self.adwin = _adwin_class()

    def fail(self, value: object, why: str) -> CheckpointError:
        return CheckpointError(f"cannot checkpoint a {type(value).__module__}.{type(value).__qualname__}: {why}")

    def again(self, value: object) -> list | None:
        """A reference to ``value`` if it was written before (labelling its node), else None."""
        key = id(value)
        if key in self.open:
            raise self.fail(value, "the state refers to itself (a cycle)")
        node = self.nodes.get(key)
        if node is None:
            return None
        label = self.label_of.get(key)
        if label is None:
            label = self.label_of[key] = len(self.label_of)
            if type(node) is dict:
                node[_LABEL_KEY] = label
            else:
                node.append(_Label(("@", label)))
        return ["r", label]

    def shared(self, v: Any, make: Callable[[Any], Any]) -> Any:
        """The node of a mutable container (or a reference to it if it was written before)."""
        ref = self.again(v)
        if ref is not None:
            return ref
        key = id(v)
        self.open.add(key)
        node = self.nodes[key] = make(v)
        self.open.discard(key)
        return node

    def index(self, spec: ClassSpec) -> int:
        i = self.classes.get(spec.alias)
        if i is None:
            i = self.classes[spec.alias] = len(self.table)
            self.table.append([spec.alias, list(spec.order)])
        return i

    def enc(self, v: Any) -> Any:
        t = type(v)
        if t is float:
            return v if v - v == 0.0 else ["f", repr(v)]
        if t is str:
            return v if is_utf8(v) else self.blob("s", v.encode("utf-8", "surrogatepass"))
        if t is int:
            return v if _JSON_INT_MIN <= v <= _JSON_INT_MAX else ["i", str(v)]
        if v is None or t is bool:
            return v
        if t is list:
            return self.shared(v, self.list_)
        if t is tuple:
            return ["t", *map(self.enc, v)]
        if t is dict:
            return self.shared(v, self.dict)
        spec = self.reg.by_type.get(t)
        if spec is not None:
            return self.obj(v, spec)
        return self.special(v, t)

    def list_(self, v: list) -> list:
        return ["l", *map(self.enc, v)]

    def dict(self, d: dict) -> Any:
        if all(type(k) is str and is_utf8(k) and k[:1] != "\x00" for k in d):
            enc = self.enc
            return {k: enc(x) for k, x in d.items()}
        node: list = ["d"]
        for k, x in d.items():
            node.append(self.key(k))
            node.append(self.enc(x))
        return node

    def key(self, k: Any) -> Any:
        t = type(k)
        if t in _SCALARS or t is bytes:
            return self.enc(k)
        if t is tuple:
            return ["t", *map(self.key, k)]
        raise self.fail(k, "only numbers, strings, bytes and tuples of them can be dict keys")

    def blob(self, tag: str, data: bytes | memoryview) -> list:
        self.blobs.append(data)
        return [tag, len(data)]

    def obj(self, v: Any, spec: ClassSpec) -> Any:
        if spec.fields is not None:  # a named tuple: immutable, written in place every time
            return [self.index(spec), *map(self.enc, v)]
        ref = self.again(v)
        if ref is not None:
            return ref
        if spec.getstate:
            attrs = v.__getstate__()
            self.keep.append(attrs)
        elif spec.dict_names:
            attrs = dict(v.__dict__)
            attrs.update((name, getattr(v, name)) for name in spec.slots)
        else:
            attrs = None
        if attrs is not None and attrs.keys() != spec.names:
            unknown = sorted(set(attrs) ^ spec.names)
            raise self.fail(v, f"attributes {unknown} are not those of the registered class: update the "
                               "checkpoint registry (src/driftline/state/codec.py) and bump STATE_FORMAT")
        node: list = [self.index(spec)]
        key = id(v)
        self.nodes[key] = node
        self.open.add(key)
        values = [getattr(v, name) for name in spec.order] if attrs is None else [attrs[n] for n in spec.order]
        if spec.methods or spec.cls is self.adwin:
            node.extend([self.member(v, spec, name, x) for name, x in zip(spec.order, values)])
        else:
            node.extend(map(self.enc, values))
        self.open.discard(key)
        return node

    def member(self, owner: Any, spec: ClassSpec, name: str, x: Any) -> Any:
        """An attribute of a class that may hold its own bound method or river's ADWIN window."""
        if type(x) is types.MethodType:
            if x.__self__ is owner and x.__func__.__name__ in spec.methods \
                    and x.__func__ is inspect.getattr_static(spec.cls, x.__func__.__name__):
                return ["m", x.__func__.__name__]
            raise self.fail(x, f"attribute {name} holds a method that may not be checkpointed")
        if type(x) is self.window_type and name == "_helper":
            return self.blob("w", x.__getstate__())
        return self.enc(x)

    def special(self, v: Any, t: type) -> Any:
        if t is np.ndarray:
            ref = self.again(v)
            if ref is not None:
                return ref
            if v.dtype.str not in _DTYPES or v.ndim > _MAX_DIMS:
                raise self.fail(v, f"arrays of dtype {v.dtype.str} or {v.ndim} dimensions are not checkpointed")
            self.blobs.append(np.ascontiguousarray(v).reshape(-1).view(np.uint8).data)
            node = ["a", v.dtype.str, list(v.shape)]
        elif t is kll_doubles_sketch:
            ref = self.again(v)
            if ref is not None:
                return ref
            node = self.blob("k", v.serialize())
        elif t is Generator:
            ref = self.again(v)
            if ref is not None:
                return ref
            bits = v.bit_generator
            if type(bits) is not PCG64:
                raise self.fail(bits, "only PCG64 generators are checkpointed")
            st = bits.state
            state, inc = st["state"]["state"], st["state"]["inc"]
            self.blobs.append(_GENERATOR.pack(state & (2 ** 64 - 1), state >> 64, inc & (2 ** 64 - 1), inc >> 64,
                                              st["has_uint32"], st["uinteger"]))
            node = ["g", "PCG64"]
        elif t is Counter or t is OrderedDict:
            return self.shared(v, lambda d: ["C" if type(d) is Counter else "D", self.dict(d)])
        elif t is bytes:
            return self.blob("b", v)
        elif isinstance(v, np.generic) and v.dtype.str in _DTYPES:
            self.blobs.append(v.tobytes())
            return ["x", v.dtype.str]  # its length follows from the dtype
        else:
            raise self.fail(v, "not a plain value nor a registered state class (src/driftline/state/codec.py)")
        self.nodes[id(v)] = node
        return node


def encode_payload(state: PartitionState) -> list[bytes | memoryview]:
    """The payload of ``state``, as parts to join (the JSON length, the JSON, the byte parts)."""
    with collector.paused():
        enc = _Encoder(registry())
        tree = enc.enc(state)
        structure = orjson.dumps([enc.table, tree])
        del tree
    return [_LENGTH.pack(len(structure)), structure, *enc.blobs]


# ------------------------------------------------------------------ decoding
def _reject(what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint payload has {what}")


class _Decoder:
    def __init__(self, reg: Registry, table: Any, blob: memoryview) -> None:
        self.reg = reg
        self.blob = blob
        self.pos = 0
        self.labelled: dict[int, Any] = {}
        self.window_type = _window_type()
        self.adwin = _adwin_class()
        self.tags = {"l": self.list_, "t": self.tuple_, "d": self.dict_node, "C": self.counter, "D": self.ordered,
                     "i": self.big_int, "f": self.non_finite, "s": self.str_, "b": self.bytes_, "a": self.array,
                     "x": self.scalar, "k": self.kll, "g": self.generator, "r": self.ref}
        self.classes = self.read_table(table)

    def read_table(self, table: Any) -> list[ClassSpec]:
        if type(table) is not list or len(table) > len(self.reg.by_alias):
            raise _reject("a malformed class table")
        out = []
        for entry in table:
            if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str or type(entry[1]) is not list:
                raise _reject("a malformed class table")
            spec = self.reg.by_alias.get(entry[0])
            if spec is None:
                raise CheckpointError(f"checkpoint names a class that is not registered: {entry[0][:60]!r}")
            if spec in out:
                raise _reject(f"{spec.alias} twice in its class table")
            if entry[1] != list(spec.order):
                theirs = sorted(map(str, entry[1]))
                extra = [n[:40] for n in theirs if n not in spec.names][:5]
                missing = sorted(spec.names - set(theirs))[:5]
                raise CheckpointError(f"checkpoint's {spec.alias} has other attributes than this worker's "
                                      f"(unknown: {extra}, missing: {missing}); written by another version?")
            out.append(spec)
        return out

    def take(self, n: Any) -> memoryview:
        if type(n) is not int or n < 0 or self.pos + n > len(self.blob):
            raise _reject("a node whose bytes are not there")
        start = self.pos
        self.pos += n
        return self.blob[start:self.pos]

    def dec(self, v: Any, depth: int) -> Any:
        t = type(v)
        if t is list:
            if depth >= MAX_DEPTH:
                raise CheckpointError(f"checkpoint payload is nested deeper than {MAX_DEPTH} levels")
            if not v:
                raise _reject("an empty array")
            head = v[0]
            if type(head) is int:
                return self.obj(v, depth + 1)
            handler = self.tags.get(head) if type(head) is str else None
            if handler is None:
                raise _reject(f"an unknown node {str(head)[:20]!r}")
            return handler(v, depth + 1)
        if t is dict:
            if depth >= MAX_DEPTH:
                raise CheckpointError(f"checkpoint payload is nested deeper than {MAX_DEPTH} levels")
            label = v.pop(_LABEL_KEY, None) if _LABEL_KEY in v else None
            dec = self.dec
            d = {k: x if type(x) in _SCALARS else dec(x, depth + 1) for k, x in v.items()}
            if label is not None:
                self.register(label, d)
            return d
        return v  # null, booleans, numbers, strings

    def items(self, v: list, depth: int, start: int = 1, stop: int | None = None) -> list:
        dec = self.dec
        return [x if type(x) in _SCALARS else dec(x, depth) for x in v[start:stop]]

    @staticmethod
    def end(v: list) -> int:
        """Where the values of a container node end (before its label, if it has one)."""
        last = v[-1]
        return len(v) - 1 if type(last) is list and last and last[0] == "@" and len(v) > 1 else len(v)

    def list_(self, v: list, depth: int) -> list:
        end = self.end(v)
        return self.label(v, end, self.items(v, depth, 1, end))

    def tuple_(self, v: list, depth: int) -> tuple:
        return tuple(self.items(v, depth))

    def dict_node(self, v: list, depth: int) -> dict:
        end = self.end(v)
        if end % 2 != 1:
            raise _reject("a dict node with a key and no value")
        values = self.items(v, depth, 1, end)
        keys = values[0::2]
        for k in keys:
            _check_key(k)
        return self.label(v, end, dict(zip(keys, values[1::2])))

    def mapping(self, v: list, depth: int, kind: type) -> dict:
        d = self.dec(v[1], depth) if len(v) in (2, 3) else None
        if type(d) is not dict:
            raise _reject("a malformed mapping node")
        return self.label(v, 2, kind(d))

    def counter(self, v: list, depth: int) -> Counter:
        return self.mapping(v, depth, Counter)

    def ordered(self, v: list, depth: int) -> OrderedDict:
        return self.mapping(v, depth, OrderedDict)

    def big_int(self, v: list, depth: int) -> int:
        if len(v) != 2 or type(v[1]) is not str or not 0 < len(v[1]) <= _MAX_BIG_INT_DIGITS \
                or not v[1].isascii() or not v[1].removeprefix("-").isdigit():
            raise _reject("a malformed integer")
        return int(v[1])

    def non_finite(self, v: list, depth: int) -> float:
        if len(v) != 2 or type(v[1]) is not str or v[1] not in _NON_FINITE:
            raise _reject("a malformed float")
        return _NON_FINITE[v[1]]

    def str_(self, v: list, depth: int) -> str:
        if len(v) != 2:
            raise _reject("a malformed string")
        try:
            return str(self.take(v[1]), "utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise _reject("a malformed string") from None

    def bytes_(self, v: list, depth: int) -> bytes:
        if len(v) != 2:
            raise _reject("a malformed bytes node")
        return bytes(self.take(v[1]))

    def label(self, v: list, arity: int, value: Any) -> Any:
        """``value``, registered under the label that follows the node's ``arity`` elements, if any."""
        if len(v) != arity:
            tag = v[arity] if len(v) == arity + 1 else None
            if type(tag) is not list or len(tag) != 2 or tag[0] != "@":
                raise _reject(f"a malformed {str(v[0])[:20]!r} node")
            self.register(tag[1], value)
        return value

    def register(self, label: Any, value: Any) -> None:
        if type(label) is not int or label in self.labelled:
            raise _reject("a malformed label")
        self.labelled[label] = value

    def ref(self, v: list, depth: int) -> Any:
        if len(v) != 2 or type(v[1]) is not int or v[1] not in self.labelled:
            raise _reject("a reference to an object it does not hold (or to one not complete: a cycle)")
        return self.labelled[v[1]]

    def array(self, v: list, depth: int) -> np.ndarray:
        if len(v) not in (3, 4) or type(v[1]) is not str or v[1] not in _DTYPES:
            raise _reject(f"an array of a dtype that is not allowed: {str(v[1:2])[:30]}")
        dtype, shape = _DTYPES[v[1]], v[2]
        if type(shape) is not list or len(shape) > _MAX_DIMS \
                or not all(type(n) is int and 0 <= n < _MAX_DIM for n in shape):
            raise _reject("an array of a malformed shape")
        count = math.prod(shape)
        array = np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype, count=count).reshape(shape).copy()
        if dtype.kind == "b" and count and array.view(np.uint8).max() > 1:
            raise _reject("a boolean array of other values")
        return self.label(v, 3, array)

    def scalar(self, v: list, depth: int) -> np.generic:
        if len(v) != 2 or type(v[1]) is not str or v[1] not in _DTYPES or _DTYPES[v[1]].kind == "b":
            raise _reject("a malformed numpy scalar")
        dtype = _DTYPES[v[1]]
        return np.frombuffer(self.take(dtype.itemsize), dtype=dtype)[0]

    def kll(self, v: list, depth: int) -> kll_doubles_sketch:
        if len(v) not in (2, 3):
            raise _reject("a malformed sketch")
        data = bytes(self.take(v[1]))
        check_kll(data)
        try:
            sketch = kll_doubles_sketch.deserialize(data)
        except Exception as exc:  # noqa: BLE001 - checked above; any refusal is a rejection
            raise CheckpointError(f"checkpoint holds a quantile sketch that cannot be read: {exc}") from None
        return self.label(v, 2, sketch)

    def generator(self, v: list, depth: int) -> Generator:
        if len(v) not in (2, 3) or v[1] != "PCG64":
            raise _reject("a malformed random generator")
        s_lo, s_hi, i_lo, i_hi, has_uint32, uinteger = _GENERATOR.unpack(self.take(_GENERATOR.size))
        if has_uint32 > 1:
            raise _reject("a malformed random generator")
        bits = PCG64(0)
        bits.state = {"bit_generator": "PCG64", "state": {"state": s_hi << 64 | s_lo, "inc": i_hi << 64 | i_lo},
                      "has_uint32": has_uint32, "uinteger": uinteger}
        return self.label(v, 2, Generator(bits))

    def window(self, v: Any, adwin: list) -> object:
        """river's ADWIN window, checked byte by byte, then against its detector's parameters."""
        if type(v) is not list or len(v) != 2 or v[0] != "w":
            raise CheckpointError("checkpoint holds an ADWIN detector without its window")
        data = bytes(self.take(v[1]))
        delta, clock, max_buckets, min_len, grace, width = check_adwin_state(data)
        theirs = dict(zip(self.reg.by_type[self.adwin].order, adwin))
        if (theirs["delta"], theirs["clock"], theirs["max_buckets"], theirs["min_window_length"],
                theirs["grace_period"]) != (delta, clock, max_buckets, min_len, grace):
            raise CheckpointError("checkpoint holds an ADWIN detector whose parameters differ from its window's")
        try:
            window = self.window_type(delta, clock, max_buckets, int(min_len), int(grace))
            window.__setstate__(data)
            ok = window.get_width() == width
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
            raise CheckpointError(f"checkpoint holds an ADWIN window that cannot be read: {type(exc).__name__}") from None
        if not ok:
            raise CheckpointError("checkpoint holds an ADWIN window that reads back differently")
        return window

    def obj(self, v: list, depth: int) -> object:
        i = v[0]
        if not 0 <= i < len(self.classes):
            raise _reject(f"an object of class #{i}, which its class table does not list")
        spec = self.classes[i]
        order = spec.order
        n = len(order)
        if spec.fields is not None:
            if len(v) != n + 1:
                raise _reject(f"a malformed {spec.alias}")
            return tuple.__new__(spec.cls, self.items(v, depth))
        if len(v) != n + 1 and len(v) != n + 2:
            raise _reject(f"a {spec.alias} with {len(v) - 1} values for {n} attributes")
        obj = object.__new__(spec.cls)
        if spec.methods or spec.cls is self.adwin:
            values = [self.member(obj, spec, name, x, v, depth) for name, x in zip(order, v[1:n + 1])]
        else:
            values = self.items(v, depth, 1, n + 1)
        if spec.dict_names:
            own = obj.__dict__
            own.update(zip(order, values))
            for name in spec.slots:  # a class with both (none today): slots through their descriptors
                object.__setattr__(obj, name, own.pop(name))
        else:
            setattr_ = object.__setattr__
            for name, value in zip(order, values):
                setattr_(obj, name, value)
        if spec.check is not None:
            spec.check(obj)
        return self.label(v, n + 1, obj)  # labelled once complete: a reference from inside it is refused

    def member(self, obj: object, spec: ClassSpec, name: str, x: Any, v: list, depth: int) -> Any:
        if type(x) is list and x and x[0] == "m":
            if name not in spec.dict_names or len(x) != 2 or type(x[1]) is not str or x[1] not in spec.methods:
                raise CheckpointError(f"checkpoint binds a method that is not allowed to {spec.alias}.{name}")
            return types.MethodType(inspect.getattr_static(spec.cls, x[1]), obj)
        if spec.cls is self.adwin and name == "_helper":
            return self.window(x, v[1:])
        return x if type(x) in _SCALARS else self.dec(x, depth)


def _check_key(k: Any) -> None:
    t = type(k)
    if t is tuple:
        for x in k:
            _check_key(x)
    elif t not in _SCALARS and t is not bytes:
        raise _reject("a dict key that is not a plain value")


def decode_payload(raw: bytes | memoryview) -> PartitionState:
    """The state in a payload (see the module docstring), or CheckpointError."""
    raw = memoryview(raw)
    if len(raw) < _LENGTH.size:
        raise CheckpointError("checkpoint payload is too short")
    (n,) = _LENGTH.unpack_from(raw)
    if n > len(raw) - _LENGTH.size:
        raise CheckpointError("checkpoint payload is truncated")
    reg = registry()
    with collector.paused():
        try:
            top = orjson.loads(raw[_LENGTH.size:_LENGTH.size + n])
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint payload is not readable: {str(exc)[:200]}") from None
        try:
            if type(top) is not list or len(top) != 2:
                raise _reject("no class table and state")
            decoder = _Decoder(reg, top[0], raw[_LENGTH.size + n:])
            state = decoder.dec(top[1], 0)
        except CheckpointError:
            raise
        except RecursionError:
            raise CheckpointError("checkpoint payload is nested too deeply") from None
        except Exception as exc:  # noqa: BLE001 - whatever a foreign payload trips over is a rejection
            raise CheckpointError(f"checkpoint payload cannot be rebuilt: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}") from None
        finally:
            del top
    if decoder.pos != len(decoder.blob):
        raise CheckpointError("checkpoint payload has bytes that belong to nothing")
    if type(state) is not PartitionState:
        raise CheckpointError(f"checkpoint holds a {type(state).__name__}, not a PartitionState")
    return state

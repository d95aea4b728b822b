"""Checks of the bytes a checkpoint hands to compiled code (DataSketches' KLL, river's Rust ADWIN).

Both libraries trust their own serialisation: measured, a mutated KLL sketch
makes ``kll_doubles_sketch.deserialize`` (or the next query) crash the process
with a segmentation fault, and an ADWIN state with ``clock = 0`` makes the next
``update`` raise a Rust panic, a ``BaseException`` that no ``except Exception``
stops.  So nothing reaches them until these parsers, written against the
libraries' serialisers (datasketches-cpp 5.2 ``kll_sketch_impl.hpp``, river
0.26 ``rust_src/adwin.rs``, bincode 1 with fixed-width little-endian
integers), have read every field and checked every invariant their code
relies on.  Bytes that are not exactly what the library could have written
raise :class:`~driftline.state.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from driftline.state.checkpoint import CheckpointError

__all__ = ["check_kll", "check_adwin_state"]

# ----------------------------------------------------------------- KLL sketch
_KLL_FAMILY = 15
_KLL_M = 8            # kll_constants::DEFAULT_M, the only m deserialize accepts
_KLL_MIN_K = 8
_KLL_MAX_LEVELS = 61  # int_cap_aux refuses depth > 60
_KLL_EMPTY, _KLL_SORTED, _KLL_SINGLE = 1, 2, 4
_KLL_PRE = struct.Struct("<BBBBHBx")   # preamble ints, serial version, family, flags, k, m, unused
_KLL_FULL = struct.Struct("<QHBx")      # n, min_k, num_levels, unused
_POWERS_OF_THREE = [3 ** i for i in range(31)]


def _int_cap_aux_aux(k: int, depth: int) -> int:
    return (((2 * k) << depth) // _POWERS_OF_THREE[depth] + 1) >> 1


def _int_cap_aux(k: int, depth: int) -> int:
    if depth <= 30:
        return _int_cap_aux_aux(k, depth)
    half = depth // 2
    return _int_cap_aux_aux(_int_cap_aux_aux(k, half), depth - half)


_CAPACITY: dict[tuple[int, int], int] = {}


def _total_capacity(k: int, num_levels: int) -> int:
    """``kll_helper::compute_total_capacity`` (cached: a state has one k)."""
    key = (k, num_levels)
    cap = _CAPACITY.get(key)
    if cap is None:
        cap = _CAPACITY[key] = sum(max(_KLL_M, _int_cap_aux(k, num_levels - h - 1)) for h in range(num_levels))
    return cap


def _kll_fail(why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint holds a malformed quantile sketch ({why})")


def check_kll(data: bytes) -> None:
    """Raise unless ``data`` is a KLL doubles sketch as ``serialize()`` writes it, with every level consistent."""
    size = len(data)
    if size < _KLL_PRE.size:
        raise _kll_fail("too short")
    pre, ser, family, flags, k, m = _KLL_PRE.unpack_from(data)
    if family != _KLL_FAMILY or m != _KLL_M or not _KLL_MIN_K <= k or flags & ~7:
        raise _kll_fail("bad preamble")
    if flags & _KLL_EMPTY:
        if (pre, ser, size) != (2, 1, 8) or flags & _KLL_SINGLE:
            raise _kll_fail("bad empty sketch")
        return
    if flags & _KLL_SINGLE:
        if (pre, ser, size) != (2, 2, 16):
            raise _kll_fail("bad single-item sketch")
        if math.isnan(struct.unpack_from("<d", data, 8)[0]):
            raise _kll_fail("NaN item")
        return
    if (pre, ser) != (5, 1) or size < _KLL_PRE.size + _KLL_FULL.size:
        raise _kll_fail("bad preamble")
    n, min_k, num_levels = _KLL_FULL.unpack_from(data, _KLL_PRE.size)
    if not (_KLL_MIN_K <= min_k <= k and 1 <= num_levels <= _KLL_MAX_LEVELS and n >= 2):
        raise _kll_fail("bad sizes")
    start = _KLL_PRE.size + _KLL_FULL.size
    if size < start + 4 * num_levels + 16:
        raise _kll_fail("too short")
    levels = list(struct.unpack_from(f"<{num_levels}I", data, start))
    levels.append(_total_capacity(k, num_levels))
    weight, total = 1, 0
    for lo, hi in zip(levels, levels[1:]):
        if hi < lo:
            raise _kll_fail("levels out of order")
        total += weight * (hi - lo)
        weight *= 2
    retained = levels[-1] - levels[0]
    if total != n or retained < 2:
        raise _kll_fail("levels do not add up to the item count")
    offset = start + 4 * num_levels
    if size != offset + 16 + 8 * retained:
        raise _kll_fail("wrong length")
    lo_item, hi_item = struct.unpack_from("<dd", data, offset)
    items = np.frombuffer(data, dtype="<f8", count=retained, offset=offset + 16)
    # NaN would break the comparator of C++'s std::sort (undefined behaviour); all items lie within [min, max]
    if not lo_item <= hi_item or not (items.min() >= lo_item and items.max() <= hi_item):
        raise _kll_fail("items outside [min, max] or NaN")


# ------------------------------------------------------------- river's ADWIN
# RsAdaptiveWindowing (pyo3_bindings.rs) = the window (adwin.rs: delta f64, clock i32, max_buckets u64,
# min_window_length f64, grace_period f64, total f64, variance f64, width f64, total_width f64,
# n_buckets i32, max_n_buckets i32, tick i32, n_detections i32, then the bucket list: u64 count, each
# bucket max_size u64, current_idx u64, totals and variances as u64 count + f64 each), then the
# wrapper's own delta f64, clock i32, max_buckets u64, min_window_length i32, grace_period i32.
# Its __setstate__ unwraps the deserialisation: any bytes bincode refuses are a Rust panic.
_ADWIN_HEAD = struct.Struct("<diQddddddiiiiQ")
_ADWIN_TAIL = struct.Struct("<diQii")
_I32_LIMIT = 2 ** 31 - 1
_ADWIN_MAX_BUCKETS = 64
_ADWIN_MAX_LEVELS = 62  # (1u64 << level) stays defined


def _adwin_fail(why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint holds a malformed ADWIN state ({why})")


def check_adwin_state(data: bytes) -> tuple[float, int, int, float, float, float]:
    """Raise unless ``data`` is an ADWIN state river could have written and whose every later update is
    defined; return its (delta, clock, max_buckets, min_window_length, grace_period, width)."""
    if len(data) < _ADWIN_HEAD.size:
        raise _adwin_fail("too short")
    (delta, clock, max_buckets, min_len, grace, total, variance, width, total_width,
     n_buckets, max_n_buckets, tick, n_detections, levels) = _ADWIN_HEAD.unpack_from(data)
    if not (0.0 < delta <= 1.0 and 1 <= clock and 1 <= max_buckets <= _ADWIN_MAX_BUCKETS
            and 1 <= levels <= _ADWIN_MAX_LEVELS):
        raise _adwin_fail("bad parameters")
    if not all(0 <= v < _I32_LIMIT for v in (n_buckets, max_n_buckets, tick, n_detections)):
        raise _adwin_fail("counter out of range")
    for v in (min_len, grace):
        if not (0.0 <= v < _I32_LIMIT and v == int(v)):
            raise _adwin_fail("bad window parameter")
    if not all(math.isfinite(v) for v in (total, variance, width, total_width)):
        raise _adwin_fail("non-finite total")
    slots = max_buckets + 1
    bucket = struct.Struct(f"<QQQ{slots}dQ{slots}d")
    if len(data) != _ADWIN_HEAD.size + levels * bucket.size + _ADWIN_TAIL.size:
        raise _adwin_fail("wrong length")
    if _ADWIN_TAIL.unpack_from(data, len(data) - _ADWIN_TAIL.size) != (delta, clock, max_buckets, min_len, grace):
        raise _adwin_fail("the window's parameters differ from its own")
    count = 0.0
    current = 0
    for level in range(levels):
        fields = bucket.unpack_from(data, _ADWIN_HEAD.size + level * bucket.size)
        max_size, current, n_totals = fields[0], fields[1], fields[2]
        n_variances = fields[3 + slots]
        if max_size != max_buckets or n_totals != slots or n_variances != slots or current > max_buckets:
            raise _adwin_fail("bad bucket")
        count += current * float(1 << level)
    # the width is the number of values the buckets hold, and the oldest bucket is never left empty
    # (removing from an empty bucket underflows in the Rust code)
    if count != width or (levels > 1 and current == 0):
        raise _adwin_fail("buckets do not add up to the width")
    return delta, clock, max_buckets, min_len, grace, width

"""Forged and damaged checkpoints are refused with CheckpointError, and nothing runs.

Every forgery below has a valid envelope: the right magic, the digest computed
over the forged bytes (the SHA-256 anyone can compute without a secret), so
only the payload decoder stands between it and the worker.  Each one, if it
worked, would create a marker file; an audit hook also records anything that
executes code, imports, opens files or starts processes while a forgery is
decoded.
"""

from __future__ import annotations

import copy
import copyreg
import hashlib
import hmac
import struct
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.state import codec
from driftline.state.checkpoint import STATE_FORMAT, CheckpointError, PartitionState, decode_state, encode_state
from tests.state import streams

codec.registry()  # its (driftline and river) imports happen here, not while a forgery is watched

MARKER = Path(f"/tmp/driftline-forged-checkpoint-ran-{STATE_FORMAT}")
CMD = f"touch {MARKER}"

# ------------------------------------------------------------ audit
_WATCHING: list[tuple[str, tuple]] = []
_ACTIVE = [False]
#: what decoding must never do: run code, import, touch files, start processes, unpickle
FORBIDDEN = {"exec", "compile", "import", "open", "os.system", "subprocess.Popen", "os.posix_spawn", "os.spawn",
             "os.exec", "os.fork", "os.remove", "os.rename", "shutil.rmtree", "pickle.find_class", "marshal.loads",
             "marshal.load", "ctypes.dlopen", "ctypes.dlsym", "socket.connect", "code.__new__", "function.__new__",
             "builtins.input", "os.system"}


def _hook(event: str, args: tuple) -> None:
    if _ACTIVE[0]:
        _WATCHING.append((event, args))


sys.addaudithook(_hook)


def refused(data: bytes, *, secret: bytes | None = None, match: str | None = None) -> str:
    """Decode ``data``: it must raise CheckpointError, run nothing, create no marker; the message."""
    MARKER.unlink(missing_ok=True)
    _WATCHING.clear()
    _ACTIVE[0] = True
    try:
        with pytest.raises(CheckpointError, match=match) as info:
            decode_state(data, secret=secret)
    finally:
        _ACTIVE[0] = False
    assert not MARKER.exists()
    ran = {event for event, _ in _WATCHING} & FORBIDDEN
    assert not ran, f"decoding a forgery did {ran}"
    return str(info.value)


# ------------------------------------------------------------ building forgeries
def envelope(payload: bytes, *, fmt: int = STATE_FORMAT, flags: int = 0, secret: bytes | None = None) -> bytes:
    """A checkpoint around ``payload`` with a correct digest (what a forger without the secret can write)."""
    prefix = struct.pack(">4sHB", b"DLCK", fmt, flags | (1 if secret else 0))
    body = prefix + payload if fmt == STATE_FORMAT else payload  # format 1 hashed the payload only
    digest = hmac.new(secret, body, hashlib.sha256).digest() if secret else hashlib.sha256(body).digest()
    return prefix + digest + payload


NEST = "@nest:"  # a string in a tree that payload() replaces with lists nested that deep


def payload(table, tree, blob: bytes = b"") -> bytes:
    structure = orjson.dumps([table, tree])
    at = structure.find(b'"' + NEST.encode())
    if at >= 0:  # deeper than orjson writes
        end = structure.index(b'"', at + 1)
        depth = int(structure[at + 1 + len(NEST):end])
        structure = structure[:at] + b'["l",' * depth + b'["l"]' + b"]" * depth + structure[end + 1:]
    return struct.pack(">Q", len(structure)) + structure + blob


def split(data: bytes) -> tuple[list, list, bytearray]:
    """(class table, state tree, byte section) of a real checkpoint."""
    (n,) = struct.unpack_from(">Q", data, 39)
    table, tree = orjson.loads(data[47:47 + n])
    return table, tree, bytearray(data[47 + n:])


@pytest.fixture(scope="module")
def real() -> bytes:
    """A checkpoint of the input partition of the realistic stream (monitors mid-stream, alert keys)."""
    p = streams.pipeline()
    streams.run(p, streams.records(0, 1_850))
    return encode_state(p.snapshot(streams.INPUT, 0, streams.offsets(1_850)[streams.INPUT]))


def nodes(tree, table, alias: str):
    """Every node of class ``alias`` in ``tree``, with its parent list and index, in document order."""
    index = [a for a, _ in table].index(alias)
    stack = [(tree, None, None)]
    while stack:
        node, parent, at = stack.pop(0)
        if type(node) is list and node and type(node[0]) is int and node[0] == index:
            yield node, parent, at
        children = node.items() if type(node) is dict else enumerate(node) if type(node) is list else ()
        for k, child in children:
            if type(child) in (list, dict):
                stack.append((child, node, k))


def blob_spans(tree) -> list[tuple[list, int, int]]:
    """(node, start, length) of every node that owns bytes of the byte section, in decoding order."""
    spans, pos = [], 0
    item = {"<f8": 8, "<f4": 4, "<i4": 4, "<i8": 8, "<i2": 2, "|i1": 1, "<u8": 8, "<u4": 4, "<u2": 2, "|u1": 1, "|b1": 1}

    def walk(v):
        nonlocal pos
        if type(v) is dict:
            for x in v.values():
                walk(x)
        elif type(v) is list and v:
            tag = v[0]
            if tag in ("s", "b", "k", "w"):
                spans.append((v, pos, v[1]))
                pos += v[1]
            elif tag == "a":
                n = item[v[1]] * int(np.prod(v[2]))
                spans.append((v, pos, n))
                pos += n
            elif tag == "g":
                spans.append((v, pos, 40))
                pos += 40
            elif tag not in ("r", "m", "i", "f", "x"):
                for x in v[1:]:
                    walk(x)
    walk(tree)
    return spans


# ------------------------------------------------------------ pickle forgeries (format 1 and its gadgets)
def _u(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def _g(module: str, name: str) -> bytes:
    return _u(module) + _u(name) + b"\x93"  # STACK_GLOBAL


P4 = b"\x80\x04"
PICKLES = {
    "GLOBAL os.system": b"cos\nsystem\n" + b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"\x85R.",
    "STACK_GLOBAL driftline.transport.worker os.system": P4 + _g("driftline.transport.worker", "os.system") + _u(CMD) + b"\x85R.",
    "numpy runstring": P4 + _g("numpy.testing._private.utils", "runstring") + _u(f"import os; os.system({CMD!r})")
    + b"}\x86R.",
    "builtins.eval": P4 + _g("builtins", "eval") + _u(f"__import__('os').system({CMD!r})") + b"\x85R.",
    "builtins.exec": P4 + _g("builtins", "exec") + _u(f"import os; os.system({CMD!r})") + b"\x85R.",
    "builtins.getattr + __import__": P4 + _g("builtins", "getattr") + _g("builtins", "__import__") + _u("os")
    + b"\x85R" + _u("system") + b"\x86R" + _u(CMD) + b"\x85R.",
    "copyreg._reconstructor Popen": P4 + _g("copyreg", "_reconstructor") + _g("subprocess", "Popen")
    + _g("subprocess", "Popen") + b"](" + _u("sh") + _u("-c") + _u(CMD) + b"e\x87R.",
    "EXT1": b"\x80\x02\x82\xf0" + b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"\x85R.",
    "EXT2": b"\x80\x02\x83\xf0\x00" + b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"\x85R.",
    "EXT4": b"\x80\x02\x84\xf0\x00\x00\x00" + b"X" + struct.pack("<I", len(CMD)) + CMD.encode() + b"\x85R.",
    "PERSID": b"P" + CMD.encode() + b"\n.",
    "BINPERSID": P4 + _u(CMD) + b"Q.",
    "old _rebind gadget": P4 + _g("driftline.state.checkpoint", "_rebind") + _g("driftline.state.checkpoint", "PartitionState")
    + b")\x81" + _u("__init__") + b"\x86R" + _u("in") + b"K\x00K\x00\x87R.",
    "memo bomb (LONG_BINPUT 2**30)": b"\x80\x05N" + b"r" + struct.pack("<I", 2 ** 30) + b".",
}


def test_the_marker_and_the_audit_hook_see_an_exploit_that_runs():
    """Control: what format 1 did with the first gadget (an unrestricted unpickler)."""
    import pickle

    MARKER.unlink(missing_ok=True)
    _WATCHING.clear()
    _ACTIVE[0] = True
    try:
        pickle.loads(PICKLES["GLOBAL os.system"])
    finally:
        _ACTIVE[0] = False
    assert MARKER.exists() and {"pickle.find_class", "os.system"} <= {e for e, _ in _WATCHING}
    MARKER.unlink()


@pytest.fixture
def extension():
    copyreg.add_extension("os", "system", 0xF0)
    yield
    copyreg.remove_extension("os", "system", 0xF0)


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_pickle_gadgets_are_refused_in_every_envelope(name, extension):
    evil = PICKLES[name]
    tracemalloc.start()
    try:
        refused(envelope(evil))  # as the whole payload
        refused(envelope(struct.pack(">Q", len(evil)) + evil))  # where the JSON part goes
        refused(envelope(evil, fmt=1), match=f"checkpoint format 1; this worker reads format {STATE_FORMAT}")  # an old checkpoint
        refused(envelope(zlib.compress(evil), flags=2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2 ** 20  # the memo bomb allocates nothing


def test_the_decoder_never_uses_pickle(real):
    import pickle

    class Trap(pickle.Unpickler):
        def __init__(self, *a, **k):
            raise AssertionError("pickle used")

    saved = pickle.Unpickler, pickle.loads, pickle.load
    pickle.Unpickler = Trap
    pickle.loads = pickle.load = Trap
    try:
        assert decode_state(real).offset > 0
    finally:
        pickle.Unpickler, pickle.loads, pickle.load = saved


# ------------------------------------------------------------ forgeries of the data format
def _forge(real: bytes, change) -> bytes:
    table, tree, blob = split(real)
    out = change(table, tree, blob)
    if type(out) is tuple:  # (a change that replaces the whole tree)
        table, tree, blob = out
    return envelope(payload(table, tree, bytes(blob)))


def _first(tree, table, alias):
    return next(nodes(tree, table, alias))


def _set_attr(tree, table, alias, attr, value):
    node, _, _ = _first(tree, table, alias)
    names = dict(table)[alias]
    node[1 + names.index(attr)] = value


def _nest(depth):
    return lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", f"{NEST}{depth}")


def _blob_of(tag, cond=lambda node: True):
    def find(tree):
        return next((node, start, n) for node, start, n in blob_spans(tree) if node[0] == tag and cond(node))
    return find


def _patch_blob(tag, offset, packed, cond=lambda node: True):
    """Overwrite bytes of the first ``tag`` node (``offset`` < 0: from its end)."""
    def change(t, tr, b):
        node, start, n = _blob_of(tag, cond)(tr)
        at = start + (offset if offset >= 0 else n + offset)
        b[at:at + len(packed)] = packed
    return change


def _dtype(dtype):
    return lambda t, tr, b: _blob_of("a")(tr)[0].__setitem__(1, dtype)


def _self_reference(t, tr, b):
    node, _, _ = next(n for n in nodes(tr, t, "DetectorParams") if len(n[0]) == 2 + len(dict(t)["DetectorParams"]))
    node[1] = ["r", node[-1][1]]  # a value of the object is the object itself


FORGERIES = {
    "alias not in the registry": lambda t, tr, b: t.append(["Popen", []]),
    "dotted alias": lambda t, tr, b: t.append(["os.system", []]),
    "registered class with an unknown attribute": lambda t, tr, b: dict(t)["Moments"].append("__reduce__"),
    "registered class without one of its attributes": lambda t, tr, b: dict(t)["Moments"].pop(),
    "a class listed twice": lambda t, tr, b: t.append(list(t[0])),
    "object of a class not in the table": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", [999]),
    "object with one value too many": lambda t, tr, b: _first(tr, t, "Moments")[0].insert(1, 0.0),
    "object with one value too many that is an int": lambda t, tr, b: _first(tr, t, "Moments")[0].append(7),
    "object with a label that is not a label": lambda t, tr, b: _first(tr, t, "Moments")[0].append(["r", 0]),
    "two objects with the same label": lambda t, tr, b: [n for n, _, _ in nodes(tr, t, "Moments")][1].append(
        next(n for n, _, _ in nodes(tr, t, "DetectorParams") if type(n[-1]) is list)[-1]),
    "array claims more bytes than there are": lambda t, tr, b: _blob_of("a")(tr)[0].__setitem__(2, [2 ** 39]),
    "a method in a class that has none": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", ["m", "merge"]),
    "ADWIN window outside ADWIN": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", ["w", 8]),
    "ADWIN window with clock 0": _patch_blob("w", 8, struct.pack("<i", 0)),
    "ADWIN window with a bucket past its end": _patch_blob("w", 92 + 8, struct.pack("<Q", 99)),
    "ADWIN window whose parameters differ from its detector's": _patch_blob("w", 0, struct.pack("<d", 0.5)),
    "KLL sketch with levels out of order": _patch_blob("k", 20, struct.pack("<I", 2 ** 31), lambda n: n[1] > 16),
    "KLL sketch with a NaN item": _patch_blob("k", -8, struct.pack("<d", float("nan")), lambda n: n[1] > 16),
    "KLL sketch with k = 0": _patch_blob("k", 4, struct.pack("<H", 0)),
    "generator with has_uint32 = 7": _patch_blob("g", 32, struct.pack("<I", 7)),
    "numeric state whose generator seed is text": lambda t, tr, b: _set_attr(tr, t, "NumericState", "_seed", "x"),
    "numeric state whose generator seed is beyond 64 bits": lambda t, tr, b: _set_attr(
        tr, t, "NumericState", "_seed", ["i", str(2 ** 64)]),
    "numeric state with draws skipped < 0": lambda t, tr, b: _set_attr(tr, t, "NumericState", "_skipped", -1),
    "numeric state whose generator is a number": lambda t, tr, b: _set_attr(tr, t, "NumericState", "_rng", 5),
    "reference to an unknown label": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", ["r", 10 ** 6]),
    "an object that contains itself": _self_reference,
    "deep nesting (100 levels)": _nest(100),
    "deep nesting (5,000 levels)": _nest(5_000),
    "dict key that is an object": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", ["d", copy.deepcopy(_first(tr, t, "Moments")[0]), 1]),
    "integer of 200 digits": lambda t, tr, b: _set_attr(tr, t, "Moments", "n", ["i", "9" * 200]),
    "integer node that is not digits": lambda t, tr, b: _set_attr(tr, t, "Moments", "n", ["i", "1e5"]),
    "float node that is not non-finite": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", ["f", "1e999"]),
    "unknown node": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", ["eval", "1"]),
    "empty array": lambda t, tr, b: _set_attr(tr, t, "Moments", "m2", []),
    "bytes after the state": lambda t, tr, b: b.extend(b"\0" * 8),
    "bytes missing at the end": lambda t, tr, b: b.__delitem__(slice(-8, None)),
    "not a partition state": lambda t, tr, b: (t, _first(tr, t, "Moments")[0], b),
    "partition state holding numbers as monitors": lambda t, tr, b: _set_attr(tr, t, "PartitionState", "monitors", ["l", 1, 2]),
    "partition state with a negative offset": lambda t, tr, b: _set_attr(tr, t, "PartitionState", "offset", -1),
}
for _name in ("|O", "<U4", "|V8", "<M8[s]", "<c16"):  # |O: dtype object
    FORGERIES[f"numpy array of dtype {_name}"] = _dtype(_name)


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_data_payloads_are_refused(name, real):
    refused(_forge(real, FORGERIES[name]))


def test_an_unchanged_split_and_rebuild_is_accepted(real):
    """(The forgeries above differ from a valid checkpoint only by what each changes.)"""
    assert decode_state(_forge(real, lambda t, tr, b: None)).offset == decode_state(real).offset


def test_a_zlib_bomb_is_refused_without_inflating_it():
    bomb = zlib.compressobj(9)
    compressed = b"".join(bomb.compress(bytes(2 ** 20)) for _ in range(256)) + bomb.flush()  # 256 MiB of zeros
    assert len(compressed) < 300_000
    tracemalloc.start()
    try:
        message = refused(envelope(compressed, flags=2), match="inflates beyond")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2 ** 20, peak
    assert "16,777,216" in message


# ------------------------------------------------------------ envelopes
def test_damaged_and_mis_signed_envelopes_are_refused(real):
    refused(real[: len(real) // 2], match="digest")  # truncated
    refused(real[:30], match="too short")
    refused(b"", match="too short")
    refused(b"XXXX" + real[4:], match="magic")
    signed = encode_state(decode_state(real), secret=b"the key")
    refused(signed, secret=b"another key", match="digest")  # wrong signature
    refused(signed, match="signed but no state_secret")
    refused(real, secret=b"the key", match="not signed but state_secret is set")  # unsigned when a secret is set
    forged = bytearray(signed)
    forged[-1] ^= 1
    refused(bytes(forged), secret=b"the key", match="digest")
    refused(envelope(real[39:], flags=0x80), match="unknown flags")
    refused(envelope(b"\0" * 7 + b"\xff" + b"[]"), match="truncated")
    refused(envelope(struct.pack(">Q", 2) + b"[]"), match="class table")


def test_format_1_checkpoints_are_refused_naming_both_formats(real):
    old = bytearray(real)
    struct.pack_into(">H", old, 4, 1)
    message = refused(bytes(old))
    assert "format 1" in message and f"format {STATE_FORMAT}" in message


def test_a_well_formed_forged_state_is_data_of_the_registered_classes_only():
    """The worst a forger without the secret can write: a state of the registered classes with values of
    its choosing (wrong statistics for that partition). Its top level must still have the right shape."""
    assert decode_state(encode_state(PartitionState("in", 0, 5))).offset == 5
    refused(encode_state(PartitionState("in", 0, 5, alerts=[("key", None)])), match="wrong shape")
    refused(encode_state(PartitionState("in", 0, 5, monitors=[{"a": 1}])), match="wrong shape")


# ------------------------------------------------------------ property tests
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_behind_a_valid_envelope_only_ever_raise_checkpoint_error(data):
    for flags in (0, 2):
        with pytest.raises(CheckpointError):
            decode_state(envelope(data, flags=flags))


_TAGS = st.sampled_from(["l", "t", "d", "C", "D", "i", "f", "s", "b", "a", "x", "k", "g", "w", "m", "r", "o", "n"])
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64 - 1), st.floats(allow_nan=False, allow_infinity=False),
                  st.text(max_size=8), st.sampled_from(["<f8", "|O", "PCG64", "nan", "_test_both", "update"]))
_TREE = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=5).flatmap(lambda xs: st.one_of(_TAGS.map(lambda t: [t, *xs]),
                                                              st.integers(-1, 30).map(lambda i: [i, *xs]))),
    st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=30)


_VALID_TABLE = [[spec.alias, list(spec.order)] for spec in codec.registry().by_alias.values()]
_TABLES = st.one_of(
    st.lists(st.sampled_from(_VALID_TABLE), max_size=6, unique_by=lambda e: e[0]),
    st.lists(st.tuples(st.sampled_from(["PartitionState", "Moments", "os.system", "x"]),
                       st.lists(st.text(max_size=6), max_size=3)).map(list), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=_TABLES, tree=_TREE, blob=st.binary(max_size=200))
def test_arbitrary_trees_only_ever_raise_checkpoint_error(table, tree, blob):
    try:
        state = decode_state(envelope(payload(table, tree, blob)))
    except CheckpointError:
        return
    assert type(state) is PartitionState  # pragma: no cover - practically unreachable


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_real_checkpoint_with_one_byte_changed_decodes_or_raises_checkpoint_error(real, data):
    """Flipped bytes anywhere in the payload (digest recomputed): the sketches' and ADWIN windows'
    bytes included, which compiled code would otherwise trust."""
    table, tree, blob = split(real)
    raw = bytearray(payload(table, tree, bytes(blob)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        decode_state(envelope(bytes(raw)))
    except CheckpointError:
        pass

"""An order-independent, mergeable digest of a multiset of float64 values.

A reference profile's id must depend on its data only: not on the row order,
not on how the data was sharded, and not on the random compactions of its KLL
sketch.  Moments are no help (a float sum's rounding depends on the order of
its terms), so each numeric feature carries a multiset hash of its values:
every value's IEEE-754 bit pattern is mixed by two 64-bit finalisers
(SplitMix64's, with different seeds) and the results are added modulo
2**64, lane by lane.  Addition modulo 2**64 commutes and associates exactly,
so the digest of a concatenation is the sum of the digests of its parts in any
order, and a repeated value counts as often as it occurs (unlike XOR).  ``-0.0``
is hashed as ``0.0`` (the monitor cannot tell them apart).

Not a cryptographic hash: it names data, it does not authenticate it.

>>> import numpy as np
>>> a, b = ValueDigest.of(np.array([1.0, 2.0])), ValueDigest.of(np.array([3.0]))
>>> a + b == ValueDigest.of(np.array([3.0, 1.0, 2.0]))
True
>>> ValueDigest.of(np.array([1.0, 1.0])) == ValueDigest.of(np.array([1.0]))
False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ValueDigest"]

_MASK = (1 << 64) - 1
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03))
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(bits: np.ndarray, seed: np.uint64) -> np.uint64:
    """Sum modulo 2**64 of SplitMix64's finaliser of ``bits + seed`` (numpy's uint64 arithmetic wraps)."""
    z = bits + seed
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return z.sum(dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class ValueDigest:
    """Two 64-bit lanes, each the sum modulo 2**64 of a per-value hash."""

    a: int = 0
    b: int = 0

    @classmethod
    def of(cls, values: np.ndarray) -> "ValueDigest":
        """The digest of finite float64 values (any order)."""
        if values.size == 0:
            return cls()
        bits = (np.ascontiguousarray(values, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 becomes 0.0
        with np.errstate(over="ignore"):
            return cls(int(_mix(bits, _SEEDS[0])), int(_mix(bits, _SEEDS[1])))

    def __add__(self, other: "ValueDigest") -> "ValueDigest":
        return ValueDigest((self.a + other.a) & _MASK, (self.b + other.b) & _MASK)

    def hex(self) -> str:
        """32 hex digits, as profiles store it."""
        return f"{self.a:016x}{self.b:016x}"

    @classmethod
    def from_hex(cls, text: str) -> "ValueDigest":
        """Read :meth:`hex`; raise ``ValueError`` for anything else."""
        if not isinstance(text, str) or len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
            raise ValueError("a value digest is 32 lower-case hex digits")
        return cls(int(text[:16], 16), int(text[16:], 16))

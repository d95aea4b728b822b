import numpy as np
from hypothesis import given, settings, strategies as st

from driftline.stats.moments import Moments

floats = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=0, max_size=50)


@settings(max_examples=100, deadline=None)
@given(floats, floats)
def test_merge_equals_one_pass(a, b):
    left, right = Moments(), Moments()
    left.update(np.array(a))
    right.update(np.array(b))
    merged = left + right
    whole = np.array(a + b)
    assert merged.n == whole.size
    if whole.size:
        assert np.isclose(merged.mean, whole.mean(), rtol=1e-9, atol=1e-6)
        assert merged.min == whole.min() and merged.max == whole.max()
    if whole.size > 1:
        assert np.isclose(merged.variance, whole.var(ddof=1), rtol=1e-6, atol=1e-3)

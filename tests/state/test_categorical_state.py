from driftline.state.categorical import OVERFLOW, CategoricalState


def test_category_cap_sends_the_rest_to_overflow():
    state = CategoricalState(max_categories=3, warmup=10)
    state.update([f"c{i}" for i in range(10)])
    assert set(state.counts) == {"c0", "c1", "c2", OVERFLOW}
    assert state.counts[OVERFLOW] == 7 and state.overflowed == 7


def test_window_test_uses_only_post_warmup_values():
    state = CategoricalState(max_categories=10, warmup=300)
    state.update(["a", "b", "c"] * 100)
    assert state.window_test() is None  # everything so far is the reference
    state.update(["a"] * 300)
    chi, psi, js = state.window_test()
    assert chi.p_value < 1e-10 and psi > 0.25 and js > 0.1
    state.reset_window()
    state.update(["a", "b", "c"] * 100)
    chi, psi, js = state.window_test()
    assert chi.p_value > 0.5 and psi < 0.01


def test_new_categories_are_counted():
    state = CategoricalState(max_categories=10, warmup=2)
    state.update(["a", "b", "z", "z", "a"])
    assert state.window_new == 2

"""Alert and summary keys: ordinary names unchanged, distinct names never one key."""

from urllib.parse import unquote

from hypothesis import given, settings, strategies as st

from driftline.detection.keys import alert_key, comparison_key, feature_part, key_part, performance_key, summary_key

#: names made of the pieces that matter to the encoding, and a few others
names = st.lists(st.sampled_from(["a", "b", ".", "/", "%", "p", "prediction", "performance", "..", "\n", "\x7f", "é",
                                  "\ud800", "~", "comparison", "2F", "%2F"]), max_size=5).map("".join)
sources = st.sampled_from(["features", "prediction", "record"])


def _output_name(source: str, name: str) -> str:
    """Outputs are always named ``prediction`` or ``prediction.<name>`` (the decoder names them so)."""
    if source != "prediction" or name == "prediction" or name.startswith("prediction."):
        return name
    return "prediction." + name if name else "prediction"


def test_ordinary_names_are_their_own_keys():
    assert alert_key("fraud", "v3.1", "features", "amount_eur", "page_hinkley") == "fraud/v3.1/amount_eur/page_hinkley"
    assert alert_key("fraud", "v3", "prediction", "prediction.score", "psi") == "fraud/v3/prediction.score/psi"
    assert summary_key("m", "2025-11-01", "features", "x") == "m/2025-11-01/x"


@settings(max_examples=300, deadline=None)
@given(st.tuples(names, names, sources, names, names), st.tuples(names, names, sources, names, names))
def test_distinct_alert_keys_for_distinct_names(a, b):
    a, b = ((t[0], t[1], t[2], _output_name(t[2], t[3]), t[4]) for t in (a, b))
    def norm(t):  # "record" and "features" share the features' namespace (record findings have their own detector)
        return (t[0], t[1], t[2] == "prediction", t[3], t[4])

    if norm(a) != norm(b):
        assert alert_key(*a) != alert_key(*b), (a, b)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("s"), names, names, sources, names),
    st.tuples(st.just("p"), names, names),
    st.tuples(st.just("c"), names, names, names)), min_size=2, max_size=2))
def test_distinct_summary_keys_for_distinct_summaries(pair):
    pair = [(t[0], t[1], t[2], t[3], _output_name(t[3], t[4])) if t[0] == "s" else t for t in pair]
    def key(t):
        return {"s": lambda: summary_key(t[1], t[2], t[3], t[4]), "p": lambda: performance_key(t[1], t[2]),
                "c": lambda: comparison_key(t[1], t[2], t[3])}[t[0]]()

    def norm(t):
        return (t[0], t[1], t[2], t[3] == "prediction", t[4]) if t[0] == "s" else t

    a, b = pair
    if norm(a) != norm(b):
        assert key(a) != key(b), (a, b)


@given(names, sources)
def test_percent_decoding_gives_the_name_back(name, source):
    assert unquote(key_part(name), errors="surrogatepass") == name
    part = feature_part(source, name)
    assert unquote(part, errors="surrogatepass") == name and ".." not in part and "/" not in part
    part.encode("utf-8")

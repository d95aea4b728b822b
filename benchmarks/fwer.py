"""Model-level false alarms and the delay cost of splitting the budget over features.

``false_alarm_rate`` is the design false alarms per event of one *model
version*: each :class:`driftline.detection.monitor.ModelMonitor` splits it
evenly over the model's features and over the checks of each feature
(Bonferroni).  This runs the real monitor over synthetic streams and prints:

* false alarms per model (every finding of any check counts) of a model with
  200 stationary features (the distributions of ``benchmarks/calibration.py``,
  with and without 1 % nulls, cycled) beside a model with one feature (normal,
  and a categorical one with nulls) over the same events: at the default budget,
  at an inflated one (so the counts are non-zero and their ratio shows), and
  with the budget per *feature* (the old behaviour: the model's rate × 200);
* the price: median detection delay (events after the change until the first
  drift finding on the shifted feature) of a +0.5 sd and +1 sd mean shift of
  one normal feature in models of 1, 10 and 200 features, with the delay that
  Siegmund's approximation predicts for the location CUSUM's threshold of each.

Usage: python benchmarks/fwer.py [--events 1000000] [--seeds 2] [--delay-seeds 50]
                                 [--inflated 1e-4] [--processes 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from rich.console import Console
from rich.table import Table

from driftline.contract.event import InferenceEvent
from driftline.detection.findings import Kind
from driftline.detection.monitor import LocatedEvent, ModelMonitor
from driftline.detection.settings import STATISTICAL_CHECKS, MonitorSettings
from driftline.state.detectors import ADWIN, CATEGORY_CUSUM, PAGE_HINKLEY, PAGE_HINKLEY_SPREAD, NumericDetectors
from driftline.stats.calibration import cusum_arl, reference_bias_variance

# The stream kinds are calibration.py's (this directory is on sys.path when run as a script).
from calibration import BEFORE, CATEGORIES, DISTRIBUTIONS, NULL_RATE, fewer_collections

MIX = BEFORE
#: the 16 stream kinds of benchmarks/calibration.py; a model's features cycle through them
KINDS = [k for d in DISTRIBUTIONS for k in (d, f"{d}+nulls")] + ["category", "category+nulls"]

DEFAULT_RATE = 2e-7
BLOCK = 32
FEATURES = 200
CHUNK = 5000
T0_MS = 1_700_000_000_000
MODEL = "fwer"
#: the single-feature models compared with the 200-feature one (columns of the same stream)
SINGLE = ("normal", "category+nulls")


def settings(rate: float) -> MonitorSettings:
    return MonitorSettings.calibrated(false_alarm_rate=rate, block=BLOCK)


def feature_names(count: int, first: str | None = None) -> list[str]:
    """``count`` feature names cycling through :data:`KINDS` (``first``, when given, leads)."""
    names = [] if first is None else [first]
    i = 0
    while len(names) < count:
        names.append(f"{KINDS[i % len(KINDS)]}#{i // len(KINDS):02d}")
        i += 1
    return names


def kind_of(name: str) -> str:
    return name.split("#")[0]


def column(rng: np.random.Generator, kind: str, n: int) -> list:
    """``n`` stationary values of one stream kind, as JSON scalars (``None`` = null)."""
    base, nulls = kind.removesuffix("+nulls"), kind.endswith("+nulls")
    if base == "category":
        values = rng.choice(CATEGORIES, size=n, p=MIX).astype(object)
    else:
        values = DISTRIBUTIONS[base](rng, n).astype(object)  # Python floats
    if nulls:
        values[rng.random(n) < NULL_RATE] = None
    return values.tolist()


def events(names: list[str], cols: list[list], start: int, model: str = MODEL) -> list[LocatedEvent]:
    """Located events whose features are ``names`` → the values of ``cols`` (row by row)."""
    return [LocatedEvent(start + i, InferenceEvent(model, "v1", None, T0_MS + (start + i) * 10, dict(zip(names, row)), None))
            for i, row in enumerate(zip(*cols))]


def _check(detector: str) -> str:
    if detector in (PAGE_HINKLEY, PAGE_HINKLEY_SPREAD, ADWIN, CATEGORY_CUSUM):
        return detector
    if detector in ("psi", "ks", "wasserstein_sd", "jensen_shannon", "chi_square"):
        return "window test"
    if detector == "missing_rate":
        return "missing rate"
    return "other"


CHECK_COLUMNS = (PAGE_HINKLEY, PAGE_HINKLEY_SPREAD, ADWIN, CATEGORY_CUSUM, "window test", "missing rate", "other")


def false_alarms(args: tuple[int, int, tuple[float, ...], tuple[float, ...]]) -> dict[tuple[str, float], dict[str, int]]:
    """Findings per check of each monitored model on one stationary stream.

    The 200-feature model runs at every rate of ``wide_rates``; each
    single-feature model (one column of the same stream) at every rate of
    ``single_rates``.  Returns ``(model, rate) -> {check: count}``.
    """
    seed, n_events, wide_rates, single_rates = args
    rng = np.random.default_rng(seed)
    names = feature_names(FEATURES)
    kinds = [kind_of(n) for n in names]
    wide = {rate: ModelMonitor(topic="bench", partition=0, model=MODEL, model_version="v1", settings=settings(rate))
            for rate in wide_rates}
    single = {(kind, rate): ModelMonitor(topic="bench", partition=0, model=f"{MODEL}-{kind}", model_version="v1",
                                         settings=settings(rate))
              for kind in SINGLE for rate in single_rates}
    where = {kind: kinds.index(kind) for kind in SINGLE}
    counts: dict[tuple[str, float], dict[str, int]] = {}
    for start in range(0, n_events, CHUNK):
        n = min(CHUNK, n_events - start)
        cols = [column(rng, k, n) for k in kinds]
        batch = events(names, cols, start)
        found = [(f"F={FEATURES}", rate, monitor.process(batch).findings) for rate, monitor in wide.items()]
        for (kind, rate), monitor in single.items():
            i = where[kind]
            found.append((f"F=1 {kind}", rate, monitor.process(events([names[i]], [cols[i]], start, f"{MODEL}-{kind}")).findings))
        for model, rate, findings in found:
            per_check = counts.setdefault((model, rate), {})
            for f in findings:
                c = _check(f.detector)
                per_check[c] = per_check.get(c, 0) + 1
    return counts


CHANGE_AT = 6000  # warm-up 2000, then 4000 stationary events
AFTER_CHANGE = 3000
SIZES = (1, 10, FEATURES)
SHIFTS = (0.5, 1.0)
SHIFTED = "x"
MU, SD = 10.0, 2.0


def delays(seed: int) -> dict[tuple[int, float], tuple[float | None, str | None]]:
    """(delay in events, detector) of the first drift finding on the shifted feature, per (F, shift).

    The shifted feature's values are the same in every model of a seed (common
    random numbers), so the F columns differ only by the model's budget split.
    """
    out: dict[tuple[int, float], tuple[float | None, str | None]] = {}
    n = CHANGE_AT + AFTER_CHANGE
    for j, shift in enumerate(SHIFTS):
        rng = np.random.default_rng([seed, j])
        x = rng.normal(MU, SD, n)
        x[CHANGE_AT:] += shift * SD
        x_col = x.tolist()
        others = [(name, column(rng, kind_of(name), n)) for name in feature_names(max(SIZES) - 1)]
        for size in SIZES:
            names = [SHIFTED] + [name for name, _ in others[:size - 1]]
            cols = [x_col] + [col for _, col in others[:size - 1]]
            model = f"{MODEL}-delay"
            monitor = ModelMonitor(topic="bench", partition=0, model=model, model_version="v1",
                                   settings=settings(DEFAULT_RATE))
            hit: tuple[float | None, str | None] = (None, None)
            for start in range(0, n, 1000):
                end = min(n, start + 1000)
                for f in monitor.process(events(names, [c[start:end] for c in cols], start, model)).findings:
                    if (f.feature == SHIFTED and f.kind == Kind.DATA_DRIFT and f.window.last_offset >= CHANGE_AT
                            and hit[0] is None):
                        hit = (f.window.last_offset - CHANGE_AT + 1, f.detector)
                if hit[0] is not None:
                    break
            out[(size, shift)] = hit
    return out


def predicted_delay(size: int, shift: float) -> float:
    """Location CUSUM delay (events) by Siegmund's approximation, for the threshold of a model of ``size``
    features (with the warm-up reference's correction)."""
    s = settings(DEFAULT_RATE)
    p = s.detector_for(size)
    h = float(NumericDetectors(p, reference_bias_variance(s.warmup)).cusums.threshold[0])
    return cusum_arl(shift, p.design_shift / 2.0, h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per stationary run")
    parser.add_argument("--seeds", type=int, default=2, help="stationary runs (seeds); the defaults take ~17 min on 2 cores")
    parser.add_argument("--delay-seeds", type=int, default=50, help="seeds for the delay runs")
    parser.add_argument("--inflated", type=float, default=1e-4, help="inflated false_alarm_rate (per event per model)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    console = Console()
    rates = (DEFAULT_RATE, args.inflated)
    old = {rate: rate * FEATURES for rate in rates}  # the budget per feature: the model's rate × features
    console.print(f"settings: {settings(DEFAULT_RATE)}")
    t0 = time.perf_counter()
    # One task per (seed, rate): the split and the per-feature budget of the 200-feature
    # model and the single-feature models all read the same stream.
    tasks = [(1000 + i, args.events, (rate, old[rate]), (rate,)) for i in range(args.seeds) for rate in rates]
    with ProcessPoolExecutor(args.processes, initializer=fewer_collections) as pool:
        fa_futures = [pool.submit(false_alarms, t) for t in tasks]
        delay_runs = list(pool.map(delays, range(args.delay_seeds)))
        fa_runs = [f.result() for f in fa_futures]
    total = args.events * args.seeds
    merged: dict[tuple[str, float], dict[str, int]] = {}
    for run in fa_runs:
        for key, per_check in run.items():
            into = merged.setdefault(key, {})
            for c, v in per_check.items():
                into[c] = into.get(c, 0) + v

    table = Table(title=f"False alarms per model on stationary streams ({total:,} events per model: "
                        f"{args.seeds} seeds × {args.events:,}); every finding of any check counts")
    for name in ("model", "false_alarm_rate", "false alarms", "per 1M events", "design bound", "÷ F=1 normal"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for c in CHECK_COLUMNS:
        table.add_column(c, justify="right")
    for rate in rates:
        base = sum(merged.get(("F=1 normal", rate), {}).values())
        rows = [(f"F=1 {k}", (f"F=1 {k}", rate), rate) for k in SINGLE]
        rows.append((f"F={FEATURES}", (f"F={FEATURES}", rate), rate))
        rows.append((f"F={FEATURES}, per-feature budget (the old behaviour)", (f"F={FEATURES}", old[rate]), old[rate]))
        for model, key, model_rate in rows:
            per_check = merged.get(key, {})
            count = sum(per_check.values())
            ratio = "-" if model == "F=1 normal" else (f"{count / base:.1f}" if base else ("-" if not count else "∞"))
            table.add_row(model, f"{model_rate:g}", str(count), f"{count / total * 1e6:.3f}",
                          f"{model_rate * total:.3g}", ratio, *(str(per_check.get(c, 0)) for c in CHECK_COLUMNS))
        table.add_section()
    console.print(table)
    console.print(f"design bound = false_alarm_rate × events: every one of the {STATISTICAL_CHECKS} checks per feature "
                  f"using its whole share (ADWIN delta and window alphas are capped at 0.01, numeric window tests "
                  f"also need PSI > 0.2, and a numeric feature has no missing-rate test without nulls, so the "
                  f"realised count stays below it).")

    table = Table(title=f"Detection delay in events after the change, default budget {DEFAULT_RATE:g} per model "
                        f"({args.delay_seeds} seeds; one normal feature shifted at event {CHANGE_AT}, the others stationary)")
    for name in ("shift", "features F", "median", "mean", "p90", "missed", "median ÷ F=1", "mean ÷ F=1",
                 "PH theory", "theory ÷ F=1", "first: PH/spread/ADWIN/window"):
        table.add_column(name, justify="left" if name == "shift" else "right")
    for shift in SHIFTS:
        base_median = base_mean = None
        for size in SIZES:
            values = [r[(size, shift)] for r in delay_runs]
            hits = sorted(d for d, _ in values if d is not None)
            by = [det for _, det in values if det is not None]
            median = statistics.median(hits) if hits else None
            mean = statistics.fmean(hits) if hits else None
            if size == 1:
                base_median, base_mean = median, mean
            theory = predicted_delay(size, shift)
            table.add_row(f"+{shift:g} sd", str(size),
                          f"{median:.0f}" if median is not None else "-",
                          f"{mean:.0f}" if mean is not None else "-",
                          f"{hits[int(0.9 * (len(hits) - 1))]:.0f}" if hits else "-",
                          str(len(values) - len(hits)),
                          f"{median / base_median:.2f}" if median and base_median else "-",
                          f"{mean / base_mean:.2f}" if mean and base_mean else "-",
                          f"{theory:.0f}", f"{theory / predicted_delay(1, shift):.2f}",
                          " / ".join(str(sum(1 for d in by if _check(d) == c))
                                     for c in (PAGE_HINKLEY, PAGE_HINKLEY_SPREAD, ADWIN, "window test")))
        table.add_section()
    console.print(table)
    console.print("PH theory: location CUSUM (two-sided, on every normal score) delay by Siegmund's approximation, "
                  "ARL(shift) at the threshold for the model's share; the threshold and so the delay "
                  f"grow with log(F·{STATISTICAL_CHECKS}/rate), not with F. wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

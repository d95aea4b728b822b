"""False alarms on stationary streams and detection delay on shifted ones.

Runs the real :class:`driftline.detection.monitor.ModelMonitor` (the code the
worker runs) over synthetic streams, many seeds, and prints two tables.  Each
stream is the only feature of its own model: the false-alarm budget
(``false_alarm_rate``) is per model and split over the model's features, so
with one feature per model the per-model figures are the per-feature ones
(``benchmarks/fwer.py`` measures models with many features).

* false alarms per 1,000,000 events per feature, for each distribution, with
  and without 1 % nulls, against a warm-up reference, and for a few
  distributions against a reference profile built from an independent
  stationary sample (every finding of any check counts);
* median / p90 detection delay (events after the change) for a +0.5 sd and a
  +1 sd mean shift and for a ×1.5 spread change, per distribution, and for a
  30-percentage-point change of a category mix: after warm-up (change at
  event 6000), and present from the first record against a profile.

Usage: python benchmarks/calibration.py [--events 2000000] [--runs 4] [--seeds 100] [--processes 2]
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from rich.console import Console
from rich.table import Table

from driftline.contract.event import InferenceEvent
from driftline.detection.findings import Kind
from driftline.detection.monitor import LocatedEvent, ModelMonitor
from driftline.detection.settings import MonitorSettings
from driftline.reference.builder import ProfileBuilder
from driftline.reference.profile import ReferenceProfile

DISTRIBUTIONS = {
    "normal": lambda r, n: r.normal(10.0, 2.0, n),
    "lognormal": lambda r, n: r.lognormal(0.0, 1.0, n),
    "uniform": lambda r, n: r.uniform(0.0, 1.0, n),
    "bimodal": lambda r, n: np.where(r.random(n) < 0.5, r.normal(-2.0, 1.0, n), r.normal(2.0, 1.0, n)),
    "student_t3": lambda r, n: r.standard_t(3, n),
    "counts": lambda r, n: r.poisson(3.0, n).astype(np.float64),
    "beta": lambda r, n: r.beta(2.0, 5.0, n),
}
#: population mean and sd of each distribution (for "shift by k sd")
MOMENTS = {
    "normal": (10.0, 2.0),
    "lognormal": (math.exp(0.5), math.sqrt((math.e - 1) * math.e)),
    "uniform": (0.5, math.sqrt(1 / 12)),
    "bimodal": (0.0, math.sqrt(5.0)),
    "student_t3": (0.0, math.sqrt(3.0)),
    "counts": (3.0, math.sqrt(3.0)),
    "beta": (2 / 7, math.sqrt(10 / (49 * 8))),
}
#: delay streams: every distribution, plus counts shifted by adding k sd
#: (non-integer values) beside counts whose Poisson rate moves by k sd.
DELAY_STREAMS = list(DISTRIBUTIONS) + ["counts+k*sd"]
CATEGORIES = ["a", "b", "c", "d", "e"]
BEFORE = [0.4, 0.3, 0.15, 0.1, 0.05]
AFTER = [0.1, 0.6, 0.15, 0.1, 0.05]  # 'a' −30 pp, 'b' +30 pp
NULL_RATE = 0.01


BLOCK = 32


def settings() -> MonitorSettings:
    return MonitorSettings.calibrated(false_alarm_rate=2e-7, block=BLOCK)


def _model(feature: str) -> str:
    """The model whose only feature is ``feature``."""
    return f"bench-{feature}"


def _monitor(feature: str, reference: ReferenceProfile | None = None) -> ModelMonitor:
    return ModelMonitor(topic="bench", partition=0, model=_model(feature), model_version="v1", settings=settings(),
                        reference=reference)


#: rows of the stationary sample a reference profile is built from
PROFILE_ROWS = 20_000
#: distributions also run against a profile (stationary, and shifted from the first record)
PROFILED = ("normal", "lognormal", "counts", "bimodal")


def _profile(feature: str, values: list) -> ReferenceProfile:
    """The reference profile of the one-feature model of ``feature`` built from ``values``."""
    b = ProfileBuilder()
    b.add([InferenceEvent(_model(feature), "v1", None, None, {feature: v}, None) for v in values])
    (profile,) = b.result()
    return profile


def _events(feature: str, values: list, start: int) -> list[LocatedEvent]:
    """Events of the one-feature model of ``feature``, one per value, from offset ``start``."""
    model = _model(feature)
    new = tuple.__new__  # NamedTuples without their Python-level __new__ (as driftline.contract.event.build)
    offsets = range(start, start + len(values))
    return [new(LocatedEvent, (o, new(InferenceEvent, (model, "v1", None, 1_700_000_000_000 + o * 10, {feature: v}, None))))
            for o, v in zip(offsets, values)]


def _stationary_columns(rng: np.random.Generator, n: int) -> dict[str, list]:
    cols: dict[str, list] = {}
    for name, gen in DISTRIBUTIONS.items():
        cols[name] = gen(rng, n).tolist()
        with_nulls = gen(rng, n).astype(object)  # Python floats, and None for the nulls
        with_nulls[rng.random(n) < NULL_RATE] = None
        cols[f"{name}+nulls"] = with_nulls.tolist()
    cols["category"] = rng.choice(CATEGORIES, size=n, p=BEFORE).tolist()
    cats = rng.choice(CATEGORIES, size=n, p=BEFORE).astype(object)
    cats[rng.random(n) < NULL_RATE] = None
    cols["category+nulls"] = cats.tolist()
    return cols


def false_alarms(args: tuple[int, int]) -> dict[str, int]:
    """Findings per feature (each the only feature of its model) on stationary streams of ``events`` records.

    Features named ``<distribution>@profile`` are compared with a profile of
    an independent stationary sample from the first event.
    """
    seed, events = args
    rng = np.random.default_rng(seed)
    monitors: dict[str, ModelMonitor] = {}
    for name in PROFILED + ("category",):
        feature = f"{name}@profile"
        sample = (rng.choice(CATEGORIES, size=PROFILE_ROWS, p=BEFORE).tolist() if name == "category"
                  else DISTRIBUTIONS[name](rng, PROFILE_ROWS).tolist())
        monitors[feature] = _monitor(feature, _profile(feature, sample))
    counts: dict[str, int] = {}
    chunk = 5000
    for start in range(0, events, chunk):
        cols = _stationary_columns(rng, chunk)
        for name in PROFILED:
            cols[f"{name}@profile"] = DISTRIBUTIONS[name](rng, chunk).tolist()
        cols["category@profile"] = rng.choice(CATEGORIES, size=chunk, p=BEFORE).tolist()
        for name, values in cols.items():
            monitor = monitors.get(name) or monitors.setdefault(name, _monitor(name))
            for f in monitor.process(_events(name, values, start)).findings:
                counts[f.feature] = counts.get(f.feature, 0) + 1
                counts[f"{f.feature}/{f.detector}"] = counts.get(f"{f.feature}/{f.detector}", 0) + 1
    return counts


CHANGE_AT = 6000  # warm-up 2000, then 4000 stationary events
AFTER_CHANGE = 3000


CHANGES = ("mean+0.5sd", "mean+1sd", "sd*1.5")


def _changed(rng: np.random.Generator, name: str, change: str, n: int, at: int) -> np.ndarray:
    """``n`` values of stream ``name`` whose values from ``at`` on have ``change``."""
    base = "counts" if name.startswith("counts") else name
    x = DISTRIBUTIONS[base](rng, n)
    mu, sd = MOMENTS[base]
    post = x[at:]
    k = {"mean+0.5sd": 0.5, "mean+1sd": 1.0}.get(change)
    if k is not None and name == "counts":
        # counts stay counts: the Poisson rate moves by k sd
        x[at:] = rng.poisson(mu + k * sd, n - at)
    elif k is not None:
        post += k * sd
    else:
        x[at:] = mu + 1.5 * (post - mu)
    return x


def _first_drift(monitor: ModelMonitor, feature: str, values: list, at: int) -> int | None:
    """Delay in events (from the change at ``at``) of the first drift finding at or after it."""
    for start in range(0, len(values), 1000):
        for f in monitor.process(_events(feature, values[start:start + 1000], start)).findings:
            if f.kind == Kind.DATA_DRIFT and f.window.last_offset >= at:
                return f.window.last_offset - at + 1
    return None


def delays(seed: int) -> dict[tuple[str, str], float | None]:
    """Detection delay (events) per (stream, change), ``None`` if missed.

    ``stream`` is a distribution (change after warm-up, at :data:`CHANGE_AT`)
    or ``<distribution>@profile`` (a profile of the unchanged distribution is
    in force and the change is there from the first record).
    """
    out: dict[tuple[str, str], float | None] = {}
    n = CHANGE_AT + AFTER_CHANGE
    for j, change in enumerate(CHANGES):
        # (not hash(change): string hashes differ between processes)
        rng = np.random.default_rng([seed, j])
        for name in DELAY_STREAMS:
            x = _changed(rng, name, change, n, CHANGE_AT)
            out[(name, change)] = _first_drift(_monitor(name), name, x.tolist(), CHANGE_AT)
        for name in PROFILED:
            feature = f"{name}@profile"
            profile = _profile(feature, DISTRIBUTIONS[name](rng, PROFILE_ROWS).tolist())
            x = _changed(rng, name, change, AFTER_CHANGE, 0)
            out[(feature, change)] = _first_drift(_monitor(feature, profile), feature, x.tolist(), 0)
    # Category mix: after warm-up, in the middle of a window; and from the first record against a profile.
    rng = np.random.default_rng([seed, 17])
    window = settings().window_events
    change_at = 2 * window + window // 2  # mid-window, after warm-up
    total = change_at + 3 * window
    cats = np.concatenate([rng.choice(CATEGORIES, size=change_at, p=BEFORE),
                           rng.choice(CATEGORIES, size=total - change_at, p=AFTER)])
    out[("category", "mix 30pp")] = _first_drift(_monitor("category"), "category", cats.tolist(), change_at)
    profile = _profile("category@profile", rng.choice(CATEGORIES, size=PROFILE_ROWS, p=BEFORE).tolist())
    out[("category@profile", "mix 30pp")] = _first_drift(
        _monitor("category@profile", profile), "category@profile",
        rng.choice(CATEGORIES, size=3 * window, p=AFTER).tolist(), 0)
    return out


#: median delay targets (events)
TARGETS = {"mean+0.5sd": 200, "mean+1sd": 50, "sd*1.5": 120, "mix 30pp": 300}


def fewer_collections() -> None:
    """Run the cyclic garbage collector less often in a worker process.

    Building millions of small event tuples and dicts (none of them cyclic)
    triggers a young-generation collection every 700 allocations, which
    doubled the run time; the figures measured here do not depend on it.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="events per stationary run")
    parser.add_argument("--runs", type=int, default=4, help="stationary runs (seeds)")
    parser.add_argument("--seeds", type=int, default=100, help="seeds for the delay runs")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--block", type=int, default=32, help="detector block (setting detector_block)")
    args = parser.parse_args()
    global BLOCK
    BLOCK = args.block
    console = Console(width=max(Console().width, 160))  # the tables are wide: never cut when piped
    s = settings()
    console.print(f"settings: {s}")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.processes, initializer=fewer_collections) as pool:
        fa_runs = list(pool.map(false_alarms, [(1000 + i, args.events) for i in range(args.runs)]))
        delay_runs = list(pool.map(delays, range(args.seeds)))
    total_events = args.events * args.runs

    table = Table(title=f"False alarms on stationary streams ({total_events:,} events per feature, {args.runs} seeds; "
                        f"one model per feature)")
    table.add_column("feature")
    table.add_column("reference")
    table.add_column("false alarms", justify="right")
    table.add_column("per 1M events", justify="right")
    table.add_column("target ≤ 1", justify="center")
    table.add_column("by check")
    names = ([n for d in DISTRIBUTIONS for n in (d, f"{d}+nulls")] + ["category", "category+nulls"]
             + [f"{d}@profile" for d in PROFILED] + ["category@profile"])
    for name in names:
        count = sum(run.get(name, 0) for run in fa_runs)
        rate = count / total_events * 1e6
        checks: dict[str, int] = {}
        for run in fa_runs:
            for key, n in run.items():
                if key.startswith(name + "/"):
                    checks[key[len(name) + 1:]] = checks.get(key[len(name) + 1:], 0) + n
        table.add_row(name.split("@")[0], "profile" if "@" in name else "warm-up", str(count), f"{rate:.3f}",
                      "yes" if rate <= 1 else "NO", ", ".join(f"{c} {n}" for c, n in sorted(checks.items())))
    console.print(table)

    table = Table(title=f"Detection delay in events after the change ({args.seeds} seeds; after warm-up: change at "
                        f"event {CHANGE_AT}; profile: shifted from the first record; one model per feature)")
    table.add_column("stream")
    table.add_column("reference")
    for change in CHANGES + ("mix 30pp",):
        table.add_column(f"{change} median (≤ {TARGETS[change]})", justify="right")
        table.add_column("p90", justify="right")
        table.add_column("missed", justify="right")
    worst: dict[str, float] = {}
    streams = DELAY_STREAMS + [f"{d}@profile" for d in PROFILED] + ["category", "category@profile"]
    for name in streams:
        row = [name.split("@")[0], "profile" if "@" in name else "warm-up"]
        for change in CHANGES + ("mix 30pp",):
            values = [r.get((name, change), "n/a") for r in delay_runs]
            if "n/a" in values:
                row += ["", "", ""]
                continue
            hits = sorted(v for v in values if v is not None)
            median = statistics.median(hits) if hits else math.inf
            worst[change] = max(worst.get(change, 0.0), median if len(hits) * 2 > len(values) else math.inf)
            ok = median <= TARGETS[change] and len(hits) * 2 > len(values)
            row += [f"{median:.0f}{'' if ok else ' (NO)'}" if hits else "-",
                    f"{hits[int(0.9 * (len(hits) - 1))]:.0f}" if hits else "-",
                    str(len(values) - len(hits))]
        table.add_row(*row)
    console.print(table)
    console.print("targets (median delay, events): " + ", ".join(
        f"{c} ≤ {t} (worst stream {worst.get(c, math.inf):.0f}: {'met' if worst.get(c, math.inf) <= t else 'NOT met'})"
        for c, t in TARGETS.items()) + f"; false alarms ≤ 1 per 1M events per feature. "
        f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

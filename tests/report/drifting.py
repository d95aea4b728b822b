"""A real replay of a drifting stream (driftline.demo.traffic), shared by the report tests.

``income`` drops by about one sd and the ``channel`` mix moves at event
``DRIFT_AT``; ``age``, ``debt_ratio`` and ``open_accounts`` stay stationary.
One replay per process (cached): the tests read its summaries and alerts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from driftline.config import load_settings
from driftline.contract.decode import decode_event
from driftline.demo.traffic import TrafficSpec, events
from driftline.reference.builder import ProfileBuilder
from driftline.reference.profile import ReferenceProfile
from driftline.cli.replay import FileReplay

MODEL = "credit-risk"
TOTAL = 6000
DRIFT_AT = 3500
START_MS = 1_764_000_000_000
STEP_MS = 50
STATIONARY = ("age", "debt_ratio", "open_accounts")
#: replay settings: small windows so the stream has a dozen of them
SETTINGS = {"warmup": "1000", "window_events": "500", "labels_topic": ""}


class Replayed(NamedTuple):
    summaries: list[dict]
    alerts: list[dict]


def write_events(path: Path, *, total: int = TOTAL, drift_at: int = DRIFT_AT, seed: int = 7) -> Path:
    with path.open("wb") as handle:
        for _, value in events(TrafficSpec(total=total, drift_at=drift_at, seed=seed, start_ms=START_MS, step_ms=STEP_MS)):
            handle.write(value + b"\n")
    return path


@lru_cache(maxsize=None)
def training_profile() -> ReferenceProfile:
    """A profile of 5,000 undrifted events of another seed, as a training set would give."""
    builder = ProfileBuilder()
    builder.add(decode_event(value, max_bytes=10**6)
                for _, value in events(TrafficSpec(total=5000, drift_at=10**9, seed=8, start_ms=START_MS - 10**8)))
    (profile,) = builder.result()
    return profile


def _replay(tmp: Path, profile: ReferenceProfile | None) -> Replayed:
    path = write_events(tmp / "events.jsonl")
    settings = dict(SETTINGS)
    if profile is not None:
        (tmp / "profile.json").write_bytes(profile.to_bytes())
        settings["reference_files"] = str(tmp / "profile.json")
    run = FileReplay(load_settings(**settings), str(path))
    summaries, alerts = [], []
    for result in run.results():
        summaries.extend(result.summaries)
        alerts.extend(result.alerts)
    return Replayed(summaries, alerts)


@lru_cache(maxsize=None)
def replayed(with_profile: bool) -> Replayed:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return _replay(Path(tmp), training_profile() if with_profile else None)

"""``driftline report``: a self-contained HTML drift report for one model.

Three sources, the same page:

* ``FILE``: the file is replayed through the live pipeline
  (:class:`driftline.cli.replay.FileReplay`) and its window summaries and
  alerts are reported;
* ``--summaries FILE [--alerts FILE]``: JSONL written by ``replay
  --summaries-out / --alerts-out`` (or copied off the topics);
* neither: the metrics and alerts topics, each read from its beginning to its
  end, and the reference profiles on the references topic.

The page itself is built by :mod:`driftline.report` (no I/O there).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import orjson
from rich.console import Console

from driftline.config import Settings
from driftline.detection.keys import key_part
from driftline.detection.timefmt import rfc3339
from driftline.errors import ConfigError, DriftlineError
from driftline.reference.profile import ReferenceProfile
from driftline.report import WindowTests, assemble, render
from driftline.transport.references import load_profile_files

__all__ = ["report", "window_tests", "read_jsonl"]

Record = dict[str, object]


def window_tests(settings: Settings) -> WindowTests:
    """The windowed tests and thresholds of the settings (those the worker used, when given the same settings)."""
    return WindowTests(settings.numeric_window_test, settings.categorical_window_test,
                       {"psi": settings.psi_threshold, "ks": settings.ks_threshold,
                        "wasserstein_sd": settings.wasserstein_threshold,
                        "jensen_shannon": settings.jensen_shannon_threshold})


def read_jsonl(path: str, flag: str, keep: Callable[[Record], bool] = lambda r: True) -> list[Record]:
    """JSON objects of a JSONL file; a missing file or a bad line is a :class:`ConfigError` naming the flag."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{flag}: file {path!r} does not exist")
    out = []
    with file.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{flag}: line {number} of {path!r} is not JSON ({exc})") from None
            if isinstance(record, dict) and keep(record):
                out.append(record)
    return out


def report(settings: Settings, args: argparse.Namespace) -> int:
    """Gather summaries, alerts and profiles for ``--model``, and write the page to ``--output``."""
    if args.file and args.summaries:
        raise ConfigError("pass either FILE (it is replayed) or --summaries, not both")
    if args.alerts and not args.summaries:
        raise ConfigError("--alerts goes with --summaries (a replayed FILE makes its own alerts; "
                          "without files they are read from the alerts topic)")
    output = Path(args.output)
    if not output.parent.is_dir():
        raise ConfigError(f"--output: directory {str(output.parent)!r} does not exist")
    console = Console(stderr=True)
    ours: Callable[[Record], bool] = lambda r: r.get("model") == args.model
    profiles: list[ReferenceProfile]
    if args.file:
        from driftline.cli.replay import FileReplay

        run = FileReplay(settings, args.file, fmt=args.format, topic=args.topic, partition=args.partition,
                         model=args.model, model_version=args.model_version, prediction_column=args.prediction_column)
        summaries: list[Record] = []
        alerts: list[Record] = []
        for result in run.results():
            summaries.extend(s for s in result.summaries if ours(s))
            alerts.extend(a for a in result.alerts if ours(a))
        for warning in run.unused_references():
            console.print(f"[yellow]{warning}[/]", soft_wrap=True)
        profiles = run.profiles
        source = f"a replay of {args.file}"
        models = {str(m.model) for m in run.pipeline.monitors.values()}
    elif args.summaries:
        everything = read_jsonl(args.summaries, "--summaries")
        models = {str(s.get("model")) for s in everything if s.get("type") == "window_summary"}
        summaries = [s for s in everything if ours(s)]
        alerts = read_jsonl(args.alerts, "--alerts", ours) if args.alerts else []
        profiles = load_profile_files(settings.reference_files)
        source = args.summaries + (f" and {args.alerts}" if args.alerts else "")
    else:
        summaries, alerts, profiles, models = _read_topics(settings, args.model, args.timeout)
        source = (f"topics {settings.metrics_topic} and {settings.alerts_topic} at {settings.bootstrap_servers}")
    data = assemble(summaries, alerts, model=args.model, model_version=args.model_version, profiles=profiles,
                    tests=window_tests(settings), source=source, generated_at=str(rfc3339(time.time() * 1000)))
    if not data.versions:
        which = args.model + (f" version {args.model_version}" if args.model_version else "")
        seen = ", ".join(sorted(models)) or "none"
        also = f" (its versions there: {', '.join(data.other_versions)})" if data.other_versions else ""
        from driftline.cli.unknown import did_you_mean

        guess = did_you_mean(args.model, models) if not data.other_versions else None
        hint = f"; did you mean {guess!r}?" if guess and guess != args.model else ""
        raise DriftlineError(f"no window summaries of model {which} in {source}{also}{hint}; models there: {seen}")
    output.write_text(render(data), encoding="utf-8")
    features = sum(len(v.features) for v in data.versions)
    moved = sum(len(v.moved) for v in data.versions)
    n_alerts = sum(len(v.alerts) for v in data.versions)
    console.print(f"wrote {output}: {args.model} ({', '.join(v.model_version for v in data.versions)}), "
                  f"{features} features ({moved} moved), {n_alerts} alert(s)", highlight=False, soft_wrap=True)
    return 0


def _read_topics(settings: Settings, model: str, timeout: float
                 ) -> tuple[list[Record], list[Record], list[ReferenceProfile], set[str]]:
    """Window summaries and alerts of ``model`` from their topics, and the profiles on the references topic.

    Profiles given with ``reference_files`` take the place of the topic's.
    """
    from driftline.transport import kafka
    from driftline.transport.references import ReferenceFeed

    admin = kafka.make_admin(settings)
    existing = kafka.check_broker(admin, settings)
    if settings.metrics_topic not in existing:
        raise ConfigError(f"metrics topic {settings.metrics_topic!r} does not exist (setting metrics_topic)")
    prefix = key_part(model).encode() + b"/"
    models: set[str] = set()

    def summary(key: bytes | None, record: Record) -> bool:
        if record.get("type") == "performance_summary":  # model quality: accuracy or MAE, label coverage
            return (key or b"").startswith(prefix) and record.get("model") == model
        if record.get("type") != "window_summary":
            return False
        models.add(str(record.get("model")))
        return (key or b"").startswith(prefix) and record.get("model") == model

    summaries = _read_to_end(settings, settings.metrics_topic, summary, timeout)
    alerts: list[Record] = []
    if settings.alerts_topic in existing:
        alerts = _read_to_end(settings, settings.alerts_topic,
                              lambda key, r: (key or b"").startswith(prefix) and r.get("model") == model, timeout)
    profiles = load_profile_files(settings.reference_files)
    if not profiles:
        feed = ReferenceFeed(settings)
        try:
            latest: dict[str, ReferenceProfile | None] = {}
            for update in feed.start(existing):
                if update.error is None:
                    latest[update.key] = update.profile
            profiles = [p for p in latest.values() if p is not None and p.model == model]
        finally:
            feed.close()
    return summaries, alerts, profiles, models


def _read_to_end(settings: Settings, topic: str, keep: Callable[[bytes | None, Record], bool],
                 timeout: float) -> list[Record]:
    """Every JSON record of ``topic`` that ``keep`` accepts, from the beginning to the end of each partition."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from driftline.transport import kafka

    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.report", client_id="driftline-report")
    try:
        metadata = reader.list_topics(topic, timeout=settings.broker_timeout_seconds)
        partitions = sorted(metadata.topics[topic].partitions)
        records = kafka.ReadToEnd(reader, [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions], timeout,
                                  poll_seconds=0.1)
        out = [record for msg, record in kafka.json_objects(records) if keep(msg.key(), record)]
        if records.pending:
            raise DriftlineError(f"{topic!r} was not read to its end within --read-timeout {timeout:g} s "
                                 f"(partitions {sorted(records.pending)} still behind)")
        return out
    finally:
        reader.close()

"""``driftline replay FILE``: the live pipeline over a file, without Kafka."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import IO

import orjson
from rich.console import Console

from driftline.config import Settings
from driftline.detection.pipeline import BatchResult, Pipeline
from driftline.transport.files import read_records
from driftline.transport.references import load_profile_files
from driftline.transport.worker import pipeline_settings

__all__ = ["replay"]


def replay(settings: Settings, args: argparse.Namespace) -> int:
    """Run every record of the file through the pipeline; print and write what it finds."""
    pipeline = Pipeline(pipeline_settings(settings))
    for profile in load_profile_files(settings.reference_files):
        pipeline.set_reference(profile)
    console = Console(stderr=True)
    alerts_out = _open(args.alerts_out)
    summaries_out = _open(args.summaries_out)
    counts: Counter[str] = Counter()
    batch = []
    records = read_records(args.file, topic=args.topic, partition=args.partition, fmt=args.format,
                           model=args.model, model_version=args.model_version, prediction_column=args.prediction_column)
    try:
        for record in records:
            batch.append(record)
            if len(batch) >= settings.batch_size:
                _emit(pipeline.process(batch), args.json, console, alerts_out, summaries_out, counts)
                batch = []
        if batch:
            _emit(pipeline.process(batch), args.json, console, alerts_out, summaries_out, counts)
    finally:
        for handle in (alerts_out, summaries_out):
            if handle is not None:
                handle.close()
    seen = {(m.model, m.model_version) for m in pipeline.monitors.values()}
    for (model, version), profile in pipeline.references.items():
        if (model, version) not in seen:
            names = ", ".join(sorted(f"{m}/{v}" for m, v in seen)) or "none"
            console.print(f"[yellow]reference {profile.name} ({model}/{version}) was not used: the file holds {names} "
                          f"(check --model / --model-version)[/]", soft_wrap=True)
    console.print(f"replayed {counts['records']:,} records: {counts['firing']} firing and {counts['resolved']} resolved "
                  f"alert(s), {counts['summaries']:,} window summaries, {counts['dead']} dead letter(s)")
    return 0


def _open(path: str | None) -> IO[bytes] | None:
    return Path(path).open("wb") if path else None


def _emit(result: BatchResult, as_json: bool, console: Console, alerts_out, summaries_out, counts: Counter[str]) -> None:
    counts["records"] += sum(result.events.values()) + len(result.dead_letters) + result.overflow.get("model", 0)
    counts["summaries"] += len(result.summaries)
    counts["dead"] += len(result.dead_letters)
    for alert in result.alerts:
        counts[str(alert["status"])] += 1
        line = orjson.dumps(alert)
        if as_json:
            sys.stdout.buffer.write(line + b"\n")
        else:
            colour = "red" if alert["status"] == "firing" else "green"
            console.print(f"[{colour}]{str(alert['status']).upper():8}[/] {alert['kind']} {alert['feature']} / "
                          f"{alert['detector']} at offset {alert['window']['last_offset']}: {alert['summary']}",  # type: ignore[index]
                          highlight=False)
        if alerts_out is not None:
            alerts_out.write(line + b"\n")
    if summaries_out is not None:
        for summary in result.summaries:
            summaries_out.write(orjson.dumps(summary) + b"\n")
    if as_json:
        sys.stdout.flush()

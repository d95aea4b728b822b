"""``driftline replay FILE``: the live pipeline over a file, without Kafka."""

from __future__ import annotations

import argparse
import base64
import sys
from collections import Counter
from pathlib import Path
from typing import IO, Iterator

import orjson
from rich.console import Console
from rich.text import Text

from driftline.cli.output import diagnostics, results
from driftline.config import Settings
from driftline.detection.pipeline import BatchResult, DeadLetter, Pipeline
from driftline.transport.files import read_records
from driftline.transport.references import load_profile_files
from driftline.transport.worker import pipeline_settings

__all__ = ["replay", "FileReplay", "alert_line", "dead_letter_line"]


def dead_letter_line(dl: DeadLetter) -> bytes:
    """A dead letter as one JSON line, to fix and replay: reason, detail, where it was, and the record's
    key and value (``value`` as text when it is UTF-8, else ``value_base64``; ``null`` for none; the same for
    the key).

    >>> from driftline.contract.event import SourceRecord
    >>> dead_letter_line(DeadLetter(SourceRecord("f.jsonl", 0, 3, None, None, b"{oops", ()), "invalid_json", "bad"))
    b'{"reason":"invalid_json","detail":"bad","topic":"f.jsonl","partition":0,"offset":3,"key":null,"value":"{oops"}'
    >>> dead_letter_line(DeadLetter(SourceRecord("f", 0, 0, None, b"k", bytes([255]), ()), "invalid_json", "bad"))[-43:]
    b'"offset":0,"key":"k","value_base64":"/w=="}'
    """
    rec = dl.record
    doc: dict[str, object] = {"reason": dl.reason, "detail": dl.detail, "topic": rec.topic, "partition": rec.partition,
                              "offset": rec.offset}
    for name, data in (("key", rec.key), ("value", rec.value)):
        if data is None:
            doc[name] = None
            continue
        try:
            doc[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            doc[f"{name}_base64"] = base64.b64encode(data).decode("ascii")
    return orjson.dumps(doc)


class FileReplay:
    """The live pipeline over one file, batch by batch: what ``replay`` and ``report`` both run.

    Reference profiles of ``settings.reference_files`` are loaded before the
    first record, as a worker loads the references topic before its first batch.
    """

    def __init__(self, settings: Settings, path: str, *, fmt: str | None = None, topic: str | None = None,
                 partition: int = 0, model: str | None = None, model_version: str | None = None,
                 prediction_column: str = "prediction") -> None:
        self.settings = settings
        self.pipeline = Pipeline(pipeline_settings(settings))
        self.profiles = load_profile_files(settings.reference_files)
        for profile in self.profiles:
            self.pipeline.set_reference(profile)
        self._records = read_records(path, topic=topic, partition=partition, fmt=fmt, model=model,
                                     model_version=model_version, prediction_column=prediction_column)

    def results(self) -> Iterator[BatchResult]:
        """One result per ``batch_size`` records, in file order."""
        batch = []
        for record in self._records:
            batch.append(record)
            if len(batch) >= self.settings.batch_size:
                yield self.pipeline.process(batch)
                batch = []
        if batch:
            yield self.pipeline.process(batch)

    def unused_references(self) -> list[str]:
        """One sentence per loaded profile whose model version the file did not hold."""
        seen = {(m.model, m.model_version) for m in self.pipeline.monitors.values()}
        names = ", ".join(sorted(f"{m}/{v}" for m, v in seen)) or "none"
        return [f"reference {profile.name} ({model}/{version}) was not used: the file holds {names} "
                f"(check --model / --model-version)"
                for (model, version), profile in self.pipeline.references.items() if (model, version) not in seen]


def replay(settings: Settings, args: argparse.Namespace) -> int:
    """Run every record of the file through the pipeline; print and write what it finds."""
    run = FileReplay(settings, args.file, fmt=args.format, topic=args.topic, partition=args.partition,
                     model=args.model, model_version=args.model_version, prediction_column=args.prediction_column)
    console = diagnostics(highlight=False)
    out = results(highlight=False, markup=False)
    alerts_out = _open(args.alerts_out)
    summaries_out = _open(args.summaries_out)
    dead_out = _open(getattr(args, "dead_letters_out", None))
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    try:
        for result in run.results():
            _emit(result, args.json, out, alerts_out, summaries_out, counts)
            for dl in result.dead_letters:
                reasons[dl.reason] += 1
                if dead_out is not None:
                    dead_out.write(dead_letter_line(dl) + b"\n")
    finally:
        for handle in (alerts_out, summaries_out, dead_out):
            if handle is not None:
                handle.close()
    for warning in run.unused_references():
        console.print(Text(warning, style="yellow"))
    console.print(f"replayed {counts['records']:,} records: {counts['firing']} firing and {counts['resolved']} resolved "
                  f"alert(s), {counts['summaries']:,} window summaries, {counts['dead']} dead letter(s)"
                  + (f" ({', '.join(f'{r} {n:,}' for r, n in reasons.most_common())})" if reasons else "")
                  + (f", written to {args.dead_letters_out}" if reasons and getattr(args, "dead_letters_out", None) else ""),
                  highlight=False, soft_wrap=True)
    return 0


def alert_line(alert: dict[str, object]) -> Text:
    """One line per alert: status, kind, feature / detector, offset and the summary, which starts with
    ``[model version]`` (every value escaped and printed without markup: names and summaries are data).

    >>> alert_line({"status": "firing", "kind": "data_drift", "feature": "x", "detector": "psi",
    ...             "window": {"last_offset": 7}, "summary": "[m v1] x moved"}).plain
    'FIRING   data_drift x / psi at offset 7: [m v1] x moved'
    """
    from driftline.redact import escape

    window = alert.get("window") if isinstance(alert.get("window"), dict) else {}
    status = str(alert.get("status", "?"))
    line = Text()
    line.append(f"{escape(status.upper()):8} ", style="red" if status == "firing" else "green")
    line.append(escape(f"{alert.get('kind')} {alert.get('feature')} / {alert.get('detector')} at offset "
                       f"{window.get('last_offset')}: {alert.get('summary', '')}"))  # type: ignore[union-attr]
    return line


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
            console.print(alert_line(alert))
        if alerts_out is not None:
            alerts_out.write(line + b"\n")
    if summaries_out is not None:
        for summary in result.summaries:
            summaries_out.write(orjson.dumps(summary) + b"\n")
    if as_json:
        sys.stdout.flush()

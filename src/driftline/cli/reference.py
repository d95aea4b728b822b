"""``driftline reference build | merge | show``: reference profiles from files."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from driftline.cli.output import diagnostics, print_json, results
from driftline.config import Settings
from driftline.contract.decode import DecodeError, decode_event
from driftline.errors import ConfigError, DriftlineError, ProfileError
from driftline.redact import bounded, escape
from driftline.reference.builder import ProfileBuilder
from driftline.reference.profile import NUMERIC, ReferenceProfile
from driftline.transport.files import read_records, read_table_batches

__all__ = ["build", "merge", "show", "withdraw", "accept", "profile_table", "profile_summary"]

_BATCH = 10_000


def build(settings: Settings, args: argparse.Namespace) -> int:
    """Profile each file, merge the per-file profiles, write and/or publish them."""
    console = diagnostics()
    merged: dict[tuple[str, str], ReferenceProfile] = {}
    def warn(text: str) -> None:
        console.print(f"warning: {escape(text)}", style="yellow", markup=False, soft_wrap=True)

    for name in args.files:
        profiles, rejected = _profile_file(name, settings, args, warn)
        if rejected:
            reasons = ", ".join(f"{n} {reason}" for reason, n in rejected.most_common())
            console.print(f"[yellow]{name}: {sum(rejected.values()):,} record(s) not profiled ({reasons})[/]",
                          soft_wrap=True)
        for profile in profiles:
            profile.origin = [Path(name).name]
            key = (profile.model, profile.model_version)
            merged[key] = merged[key].merge(profile) if key in merged else profile
    if args.model_version and args.model:
        merged = {k: p for k, p in merged.items() if k == (args.model, args.model_version)}
    elif args.model:
        merged = {k: p for k, p in merged.items() if k[0] == args.model}
    if not merged:
        raise ConfigError("no events to profile in " + ", ".join(args.files)
                          + (f" for model {args.model!r}" if args.model else ""))
    return _write(settings, args, list(merged.values()), console)


def merge(settings: Settings, args: argparse.Namespace) -> int:
    """Merge profile files of one model version (e.g. built from shards in parallel)."""
    console = diagnostics()
    profiles = [_read_profile(name) for name in args.files]
    out = profiles[0]
    for other in profiles[1:]:
        out = out.merge(other)
    return _write(settings, args, [out], console)


def show(settings: Settings | None, args: argparse.Namespace) -> int:
    """Print profile files: a table each, or with ``--json`` one document of their summaries."""
    _print_profiles([_read_profile(name) for name in args.files], args)
    return 0


def _print_profiles(profiles: list[ReferenceProfile], args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print_json({"profiles": [profile_summary(p) for p in profiles]})
        return
    console = results(highlight=False)
    for profile in profiles:
        console.print(profile_table(profile))


def withdraw(settings: Settings, args: argparse.Namespace) -> int:
    """Tombstone a model version's profile on the references topic."""
    from driftline.cli.unknown import shown, unknown_value
    from driftline.transport.references import profiles_in_force, withdraw_profile

    key = f"{args.model}/{args.model_version}"
    found, complete = profiles_in_force(settings, timeout=max(30.0, settings.broker_timeout_seconds))
    if not complete:
        raise DriftlineError(f"cannot tell whether {shown(key)} has a profile: {settings.references_topic!r} was not "
                             "read to its end in time; nothing withdrawn")
    if key not in found:
        in_force = sorted(k for k, p in found.items() if p is not None)
        raise ConfigError(unknown_value("profile", key, in_force) + f" on {settings.references_topic!r}: nothing "
                          "withdrawn (a profile is keyed MODEL/MODEL_VERSION, as --model and --model-version give it)")
    if found[key] is None:
        Console(stderr=True).print(f"the profile of {key} on {settings.references_topic!r} was withdrawn already; "
                                   "nothing to do", soft_wrap=True, markup=False, highlight=False)
        return 0
    withdraw_profile(settings, args.model, args.model_version)
    diagnostics().print(f"withdrew the profile of {args.model}/{args.model_version} from "
                               f"{settings.references_topic!r}; workers fall back to warm-up references", soft_wrap=True)
    return 0


def accept(settings: Settings, args: argparse.Namespace) -> int:
    """Publish a profile rebuilt from the window summaries since the model version's incident opened."""
    import sys
    import time

    import orjson

    from driftline.contract.decode import parse_timestamp
    from driftline.detection.timefmt import rfc3339
    from driftline.reference.accept import AcceptError, accept as accept_windows, open_incidents
    from driftline.transport.references import profile_in_force, publish_profiles

    from driftline.contract.decode import _MAX_NAME as MAX_NAME
    from driftline.contract.names import is_utf8

    for flag, values in (("--model", [args.model]), ("--model-version", [args.model_version]), ("--feature", args.feature)):
        for value in values:
            if not value or len(value) > MAX_NAME or not is_utf8(value):
                raise ConfigError(f"invalid {flag} {escape(bounded(repr(value), 80))}: a name of 1 to {MAX_NAME} "
                                  "characters of valid UTF-8, as inference records carry it")
    if args.since is not None:
        since_ms = parse_timestamp(args.since)
        if since_ms is None:
            raise ConfigError(f"invalid --since {bounded(repr(args.since), 80)}: an RFC 3339 date-time such as "
                              "2026-12-01T10:00:00Z, the event time from which the data is the new normal")
    if not args.timeout > 0:
        raise ConfigError(f"invalid --read-timeout {args.timeout:g}: seconds to read the topics, more than 0")
    deadline = time.monotonic() + args.timeout
    console = diagnostics(highlight=False)
    notes: list[str] = []
    model, version = args.model, args.model_version

    def remaining() -> float:
        return max(1.0, deadline - time.monotonic())

    from driftline.detection.keys import key_part

    prefix = f"{key_part(model)}/{key_part(version)}/".encode()
    current, complete = profile_in_force(settings, model, version, timeout=remaining())
    if not complete:
        notes.append(f"the references topic {settings.references_topic!r} was not read to its end within --read-timeout")
    incidents = []
    if args.since is None:
        alerts = _read_json_topic(settings, settings.alerts_topic, remaining(), "alerts_topic", notes, prefix)
        incidents = open_incidents(alerts, model, version)
        if args.feature:
            incidents = [i for i in incidents if i.feature in args.feature] or incidents
        opened = [i.opened_ms for i in incidents if i.opened_ms is not None]
        if not opened:
            summaries = _read_json_topic(settings, settings.metrics_topic, remaining(), "metrics_topic", notes, prefix)
            if current is None and not any(a.get("model") == model and a.get("model_version") == version for a in alerts) \
                    and not any(s.get("model") == model and s.get("model_version") == version for s in summaries):
                raise AcceptError(f"unknown model version {model}/{version}: nothing of it on the alerts topic "
                                  f"{settings.alerts_topic!r}, the metrics topic {settings.metrics_topic!r} or the "
                                  f"references topic {settings.references_topic!r}")
            raise AcceptError(f"no open incident of {model}/{version} on the alerts topic {settings.alerts_topic!r}: "
                              "nothing says since when the data is the new normal; pass --since <RFC 3339 event time>")
        since_ms = min(opened)
    summaries = _read_json_topic(settings, settings.metrics_topic, remaining(), "metrics_topic", notes, prefix)
    result = accept_windows(summaries, model=model, model_version=version, since_ms=since_ms,
                            features=args.feature or None, current=current)
    profile = result.profile
    profile.created_at = rfc3339(time.time() * 1000)[:19] + "Z"
    profile.origin = [f"accepted from {settings.metrics_topic} since {rfc3339(since_ms)}"]
    if result.skipped:
        notes.append(f"{result.skipped} malformed window summary(ies) of {model}/{version} skipped")
    if current is None and args.feature:
        accepted_names = {(f.source, f.name) for f in result.accepted}
        others = sorted({str(d.get("feature")) for d in summaries if d.get("type", "window_summary") == "window_summary"
                         and d.get("model") == model
                         and d.get("model_version") == version and isinstance(d.get("feature"), str)
                         and (d.get("source", "features"), d.get("feature")) not in accepted_names})
        if others:
            notes.append(f"no profile of {model}/{version} is in force, so the profile holds only the features "
                         f"accepted: {bounded(', '.join(others), 300)} will be compared with their own warm-up "
                         "(and raise not_in_reference once); accept them too, or leave out --feature")
    for f in result.accepted:
        if f.values < settings.warmup:
            notes.append(f"{f.source} {f.name!r}: only {f.values:,} values since then (fewer than warmup, "
                         f"{settings.warmup:,}); the accepted reference is as rough as that")
    published_to = None
    if args.output:
        Path(args.output).write_bytes(profile.to_bytes())
    if not args.dry_run:
        publish_profiles(settings, [profile])
        published_to = settings.references_topic
    report = {
        "model": model, "model_version": version, "profile": profile.name, "id": profile.id,
        "previous": current.name if current is not None else None,
        "since": rfc3339(since_ms), "since_from": "--since" if args.since is not None else "open incidents",
        "incidents": [{"alert_key": i.alert_key, "feature": i.feature, "kind": i.kind, "incident_id": i.incident_id,
                       "opened_event_time": i.opened_event_time} for i in incidents],
        "features": [f._asdict() for f in result.accepted],
        "kept": [{"source": s, "name": n} for s, n in result.kept],
        "windows": result.windows, "events": result.events,
        "published": published_to is not None, "references_topic": published_to, "output": args.output,
        "dry_run": bool(args.dry_run), "notes": notes,
    }
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_acceptance(results(highlight=False, markup=False), report, profile)
    for note in notes:
        console.print(f"note: {escape(note)}", markup=False, soft_wrap=True)
    return 0


def _print_acceptance(console: Console, report: dict, profile: ReferenceProfile) -> None:
    since = f"since {report['since']} ({report['since_from']})"
    what = "would publish" if report["dry_run"] else f"published to {report['references_topic']!r}"
    console.print(escape(f"{report['model']}/{report['model_version']}: {report['profile']} {what}; accepted "
                         f"{len(report['features'])} feature(s) from {report['windows']:,} window(s), "
                         f"{report['events']:,} event(s) {since}"), soft_wrap=True)
    if report["previous"]:
        console.print(escape(f"replaces {report['previous']}; {len(report['kept'])} feature(s) kept from it"), soft_wrap=True)
    for i in report["incidents"]:
        then = "would resolve" if report["dry_run"] else "resolves"
        console.print(escape(f"open incident {i['alert_key']} since {i['opened_event_time']}: {then} "
                             f"(\"reference_changed\") once the workers use the new profile"), soft_wrap=True)
    table = Table(title="accepted", title_justify="left")
    for column in ("source", "feature", "type", "windows", "values", "records"):
        table.add_column(column, justify="left" if column in ("source", "feature", "type") else "right")
    for f in report["features"]:
        table.add_row(escape(f["source"]), escape(f["name"]), f["kind"], f"{f['windows']:,}", f"{f['values']:,}",
                      f"{f['records']:,}")
    console.print(table)
    console.print(profile_table(profile))


def _read_json_topic(settings: Settings, topic: str, timeout: float, setting: str, notes: list[str],
                     key_prefix: bytes | None = None) -> list[dict]:
    """The JSON objects of a whole topic (empty if it does not exist); a note when its end was not reached.

    ``key_prefix``: records keyed otherwise are not decoded (the workers key alerts and summaries
    ``model/model_version/...``, so another model's records are skipped unread)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from driftline.transport import kafka

    admin = kafka.make_admin(settings)
    if topic not in kafka.check_broker(admin, settings):
        notes.append(f"topic {topic!r} does not exist (setting {setting})")
        return []
    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.accept", client_id="driftline-reference")
    try:
        metadata = reader.list_topics(topic, timeout=settings.broker_timeout_seconds)
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(metadata.topics[topic].partitions)]
        records = kafka.ReadToEnd(reader, starts, timeout, poll_seconds=0.2)
        mine = (m for m in records if key_prefix is None or m.key() is None or m.key().startswith(key_prefix))
        out = [doc for _, doc in kafka.json_objects(mine)]
        if records.pending:
            notes.append(f"topic {topic!r} was not read to its end within --read-timeout")
        return out
    finally:
        reader.close()


def _read_profile(name: str) -> ReferenceProfile:
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"profile file {name!r} does not exist")
    try:
        return ReferenceProfile.from_bytes(path.read_bytes())
    except ProfileError as exc:
        raise ProfileError(f"{name}: {exc}") from None


def _profile_file(name: str, settings: Settings, args: argparse.Namespace,
                  warn: Callable[[str], None] | None = None) -> tuple[list[ReferenceProfile], Counter[str]]:
    builder = ProfileBuilder()
    rejected: Counter[str] = Counter()
    # Tables of one model version are read column by column (same values, no JSON per row).
    table = read_table_batches(name, fmt=args.format, model=args.model, model_version=args.model_version,
                               prediction_column=args.prediction_column, warn=warn)
    if table is not None:
        for batch in table:
            builder.add_columns(batch.model, batch.model_version, batch.rows, batch.features, batch.outputs,
                                batch.output_rows)
        return builder.result(), rejected
    batch = []
    records = read_records(name, fmt=args.format, model=args.model, model_version=args.model_version,
                           prediction_column=args.prediction_column, warn=warn)
    for record in records:
        event = decode_event(record.value, max_bytes=settings.max_record_bytes, record_timestamp_ms=None)
        if type(event) is DecodeError:
            rejected[event.reason] += 1
            continue
        batch.append(event)
        if len(batch) >= _BATCH:
            builder.add(batch)
            batch = []
    builder.add(batch)
    return builder.result(), rejected


def _write(settings: Settings, args: argparse.Namespace, profiles: list[ReferenceProfile], console: Console) -> int:
    if not args.output and not args.publish:
        raise ConfigError("say where the profile goes: --output FILE (or DIRECTORY) and/or --publish")
    if args.output:
        target = Path(args.output)
        if len(profiles) > 1 and not target.is_dir():
            keys = ", ".join(p.key for p in profiles)
            raise ConfigError(f"the input holds {len(profiles)} model versions ({keys}); pick one with --model / "
                              f"--model-version, or pass an existing directory as --output")
        for profile in profiles:
            path = target / _file_name(profile) if target.is_dir() else target
            path.write_bytes(profile.to_bytes())
            console.print(f"wrote {profile.name} for {profile.key} to {path} ({path.stat().st_size:,} bytes)",
                          soft_wrap=True)
    if args.publish:
        from driftline.transport.references import publish_profiles

        publish_profiles(settings, profiles)
        for profile in profiles:
            console.print(f"published {profile.name} for {profile.key} to {settings.references_topic!r}")
    _print_profiles(profiles, args)
    return 0


def _file_name(profile: ReferenceProfile) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", f"{profile.model}@{profile.model_version}") + ".profile.json"


def profile_summary(profile: ReferenceProfile) -> dict:
    """What :func:`profile_table` shows, as plain data (``--json``): one entry per feature.

    Numeric features carry mean, sd and the 5 / 50 / 95 % quantiles; categorical ones their top
    category, its share and the number of categories."""
    features = []
    for (source, name), f in sorted(profile.features.items()):
        row: dict = {"source": source, "feature": name, "type": f.kind, "count": f.count,
                     "missing_ratio": f.missing_ratio}
        if f.kind == NUMERIC and f.sketch is not None and not f.sketch.is_empty():
            p05, p50, p95 = f.sketch.get_quantiles([0.05, 0.5, 0.95], True)
            row.update(mean=f.moments.mean, sd=f.moments.sd, p05=p05, p50=p50, p95=p95)
        elif f.kind != NUMERIC:
            cats = f.categories or {}
            top = max(cats, key=lambda k: cats[k]) if cats else None
            row.update(top_category=top, top_share=cats[top] / f.count if top is not None and f.count else None,
                       categories=len(cats))
        features.append(row)
    return {"key": profile.key, "name": profile.name, "id": profile.id, "model": profile.model,
            "model_version": profile.model_version, "records": profile.records, "features": features}


def profile_table(profile: ReferenceProfile) -> Table:
    """A terminal table of a profile: one row per feature (names escaped: they are data)."""
    summary = profile_summary(profile)
    table = Table(title=Text(escape(f"{profile.key} — {profile.name} — {profile.records:,} records")), title_justify="left")
    for column in ("source", "feature", "type", "count", "missing", "mean / top category", "sd / categories",
                   "p05", "p50", "p95"):
        text = column in ("source", "feature", "type")
        table.add_column(column, justify="left" if text else "right", no_wrap=column == "feature",
                         min_width=7 if text else None)
    for f in summary["features"]:
        missing = f"{f['missing_ratio']:.1%}" if f["missing_ratio"] is not None else "-"
        cells = [Text(escape(f["source"])), Text(escape(f["feature"])), f["type"], f"{f['count']:,}", missing]
        if "mean" in f:
            cells += [f"{f['mean']:.4g}", f"{f['sd']:.4g}", f"{f['p05']:.4g}", f"{f['p50']:.4g}", f"{f['p95']:.4g}"]
        elif "categories" in f:
            top = f["top_category"]
            share = f" ({f['top_share']:.0%})" if f["top_share"] is not None else ""
            cells += [Text(escape(f"{top}{share}" if top is not None else "-")), f"{f['categories']}", "", "", ""]
        else:
            cells += ["-", "-", "", "", ""]
        table.add_row(*cells)
    return table

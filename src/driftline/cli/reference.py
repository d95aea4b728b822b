"""``driftline reference build | merge | show``: reference profiles from files."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftline.config import Settings
from driftline.contract.decode import DecodeError, decode_event
from driftline.errors import ConfigError, ProfileError
from driftline.reference.builder import ProfileBuilder
from driftline.reference.profile import NUMERIC, ReferenceProfile
from driftline.transport.files import read_records, read_table_batches

__all__ = ["build", "merge", "show", "withdraw", "profile_table"]

_BATCH = 10_000


def build(settings: Settings, args: argparse.Namespace) -> int:
    """Profile each file, merge the per-file profiles, write and/or publish them."""
    console = Console(stderr=True)
    merged: dict[tuple[str, str], ReferenceProfile] = {}
    for name in args.files:
        profiles, rejected = _profile_file(name, settings, args)
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
    console = Console(stderr=True)
    profiles = [_read_profile(name) for name in args.files]
    out = profiles[0]
    for other in profiles[1:]:
        out = out.merge(other)
    return _write(settings, args, [out], console)


def show(settings: Settings, args: argparse.Namespace) -> int:
    console = Console()
    for name in args.files:
        console.print(profile_table(_read_profile(name)))
    return 0


def withdraw(settings: Settings, args: argparse.Namespace) -> int:
    """Tombstone a model version's profile on the references topic."""
    from driftline.transport.references import withdraw_profile

    withdraw_profile(settings, args.model, args.model_version)
    Console(stderr=True).print(f"withdrew the profile of {args.model}/{args.model_version} from "
                               f"{settings.references_topic!r}; workers fall back to warm-up references", soft_wrap=True)
    return 0


def _read_profile(name: str) -> ReferenceProfile:
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"profile file {name!r} does not exist")
    try:
        return ReferenceProfile.from_bytes(path.read_bytes())
    except ProfileError as exc:
        raise ProfileError(f"{name}: {exc}") from None


def _profile_file(name: str, settings: Settings, args: argparse.Namespace) -> tuple[list[ReferenceProfile], Counter[str]]:
    builder = ProfileBuilder()
    rejected: Counter[str] = Counter()
    # Tables of one model version are read column by column (same values, no JSON per row).
    table = read_table_batches(name, fmt=args.format, model=args.model, model_version=args.model_version,
                               prediction_column=args.prediction_column)
    if table is not None:
        for batch in table:
            builder.add_columns(batch.model, batch.model_version, batch.rows, batch.features, batch.prediction)
        return builder.result(), rejected
    batch = []
    records = read_records(name, fmt=args.format, model=args.model, model_version=args.model_version,
                           prediction_column=args.prediction_column)
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
    for profile in profiles:
        console.print(profile_table(profile))
    return 0


def _file_name(profile: ReferenceProfile) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", f"{profile.model}@{profile.model_version}") + ".profile.json"


def profile_table(profile: ReferenceProfile) -> Table:
    """A terminal table of a profile: one row per feature."""
    table = Table(title=f"{profile.key} — {profile.name} — {profile.records:,} records", title_justify="left")
    for column in ("source", "feature", "type", "count", "missing", "mean / top category", "sd / categories",
                   "p05", "p50", "p95"):
        text = column in ("source", "feature", "type")
        table.add_column(column, justify="left" if text else "right", no_wrap=column == "feature",
                         min_width=7 if text else None)
    for (source, name), f in sorted(profile.features.items()):
        missing = f"{f.missing_ratio:.1%}" if f.missing_ratio is not None else "-"
        if f.kind == NUMERIC and f.sketch is not None and not f.sketch.is_empty():
            p05, p50, p95 = f.sketch.get_quantiles([0.05, 0.5, 0.95], True)
            table.add_row(source, name, f.kind, f"{f.count:,}", missing, f"{f.moments.mean:.4g}", f"{f.moments.sd:.4g}",
                          f"{p05:.4g}", f"{p50:.4g}", f"{p95:.4g}")
        else:
            cats = f.categories or {}
            top = max(cats, key=lambda k: cats[k]) if cats else "-"
            share = f" ({cats[top] / f.count:.0%})" if cats and f.count else ""
            table.add_row(source, name, f.kind, f"{f.count:,}", missing, f"{top}{share}", f"{len(cats)}", "", "", "")
    return table

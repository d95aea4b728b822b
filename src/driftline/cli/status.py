"""``driftline status``: what a worker group is monitoring, its lag and its active alerts.

Everything comes from Kafka, so the command works from any machine that can
reach the brokers, whatever runs the workers:

* the consumer group (setting ``group_id``): state, members and the
  partitions assigned to each (the group coordinator's description);
* per input and labels partition: the group's committed offset, the log end
  offset and their difference, the lag;
* the models, versions and features monitored, with their reference and
  latest drift statistics: the newest window summaries on the metrics topic
  (``--since`` seconds of them, read to the end);
* the active alerts: the alerts topic read to its end and folded to the keys
  whose last record is ``firing``;
* the open incidents: the active alerts grouped by model incident
  (``incident_id``), with their features, kinds and detectors;
* dead letters by reason: the ``driftline.reason`` header of the dead-letter
  topic's records of the same ``--since`` seconds;
* per model version with labels: label coverage and the newest window's
  accuracy (or MAE), from the ``performance_summary`` records; with
  ``--model M``, M's windows one by one and its concept-drift alerts.

A group id that has neither members nor committed offsets is reported as
unknown (its lag would otherwise be every record kept), with the groups the
broker knows; an unknown ``--model`` is a configuration error naming the
models seen.

The folding is pure (:mod:`driftline.observability.status`); this module
only reads Kafka and prints, as rich tables or, with ``--json``, one JSON
document for scripts.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from driftline.cli.output import diagnostics, escaped, results
from driftline.config import Settings
from driftline.errors import ConfigError
from driftline.cli.unknown import did_you_mean, shown, unknown_value
from driftline.observability.status import (active_alerts, concept_drift_alerts, dead_letter_counts, model_performance,
                                            monitored_features, monitored_models, open_incidents, partition_lag,
                                            performance_windows)

__all__ = ["status", "collect", "group_description", "render"]


def group_description(description: Any) -> dict[str, Any]:
    """A ``ConsumerGroupDescription`` of confluent-kafka as plain data.

    ``members`` list each member's id, client id, host, static instance id
    and assigned partitions (``[topic, partition]`` pairs, sorted).
    """
    members = []
    for m in description.members or ():
        assignment = getattr(m, "assignment", None)
        tps = sorted((tp.topic, tp.partition) for tp in (getattr(assignment, "topic_partitions", None) or ()))
        members.append({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                        "group_instance_id": m.group_instance_id, "partitions": [list(tp) for tp in tps]})
    state = getattr(description.state, "name", str(description.state))
    coordinator = description.coordinator
    return {"group_id": description.group_id, "state": state.lower(), "assignor": description.partition_assignor or None,
            "coordinator": f"{coordinator.host}:{coordinator.port}" if coordinator is not None else None,
            "members": sorted(members, key=lambda m: (m["client_id"] or "", m["member_id"]))}


def _read_to_end(settings: Settings, topic: str, partitions: list[int], *, deadline: float,
                 since_ms: int | None) -> tuple[list[dict[str, Any]], bool]:
    """JSON objects of a topic, from ``since_ms`` (or the beginning) to its end; and whether the end was reached."""

    from driftline.transport import kafka

    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.status", client_id="driftline-status")
    try:
        records = _read_since(reader, topic, partitions, deadline=deadline, since_ms=since_ms)
        out = [doc for _, doc in kafka.json_objects(records)]
        return out, not records.pending
    finally:
        reader.close()


def _read_since(reader, topic: str, partitions: list[int], *, deadline: float, since_ms: int | None):
    """The records of ``topic`` from ``since_ms`` (or the beginning) to its end, read until ``deadline``."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    from driftline.transport import kafka

    if since_ms is None:
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    else:
        found = reader.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions],
                                         timeout=max(1.0, deadline - time.monotonic()))
        # -1: no record at or after that time, so nothing to read there
        starts = [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END) for tp in found]
    return kafka.ReadToEnd(reader, starts, max(0.0, deadline - time.monotonic()), poll_seconds=0.2)


def _read_reasons(settings: Settings, topic: str, partitions: list[int], *, deadline: float,
                  since_ms: int | None) -> tuple[dict[str, int], int, bool]:
    """Dead letters of a topic by reason (from ``since_ms``), how many, and whether the end was reached."""

    from driftline.transport import kafka

    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.status", client_id="driftline-status")
    try:
        records = _read_since(reader, topic, partitions, deadline=deadline, since_ms=since_ms)
        reasons = []
        for msg in records:
            reasons.append(next((v for k, v in (msg.headers() or ()) if k == "driftline.reason"), None))
        return dead_letter_counts(reasons), len(reasons), not records.pending
    finally:
        reader.close()


def _known_groups(admin: Any, timeout: float) -> list[str]:
    """Consumer groups the broker lists, without the readers of driftline's own commands (best effort)."""
    try:
        answer = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    except Exception:  # noqa: BLE001 - only a hint in a note
        return []
    helpers = (".status", ".tail", ".report", ".compare", ".accept", ".warm")
    return sorted(g.group_id for g in answer.valid or () if g.group_id and not g.group_id.endswith(helpers))


def collect(settings: Settings, *, timeout: float = 30.0, since_seconds: float = 86_400.0,
            model: str | None = None) -> dict[str, Any]:
    """Everything ``driftline status`` shows, as plain data (the ``--json`` document); with ``model``, the
    tables are of that model only and ``model_quality`` holds its windows and concept-drift alerts."""
    from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    from driftline.transport import kafka

    deadline = time.monotonic() + timeout
    admin = kafka.make_admin(settings)
    existing = kafka.check_broker(admin, settings)
    metadata = admin.list_topics(timeout=settings.broker_timeout_seconds).topics
    notes: list[str] = []

    def remaining() -> float:
        return max(1.0, deadline - time.monotonic())

    # the group: members and what is assigned to whom
    try:
        group = group_description(admin.describe_consumer_groups([settings.group_id], request_timeout=remaining())
                                  [settings.group_id].result(timeout=remaining()))
    except (KafkaException, TimeoutError) as exc:
        group = {"group_id": settings.group_id, "state": "unknown", "assignor": None, "coordinator": None, "members": []}
        notes.append(f"cannot describe group {settings.group_id!r}: {exc.args[0] if exc.args else exc}")
    owners = {(t, p): m["client_id"] or m["member_id"] for m in group["members"] for t, p in m["partitions"]}

    # lag: committed offsets against the log end of every input and labels partition
    topics = [t for t in settings.input_topics + ([settings.labels_topic] if settings.labels_topic else []) if t in existing]
    for t in settings.input_topics:
        if t not in existing:
            notes.append(f"input topic {t!r} does not exist (setting input_topics)")
    partitions = {(t, p) for t in topics for p in metadata[t].partitions}
    committed: dict[tuple[str, int], int] = {}
    try:
        answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(settings.group_id)],
                                                   request_timeout=remaining())[settings.group_id].result(timeout=remaining())
        for tp in answer.topic_partitions or ():
            if tp.error is None and tp.offset >= 0:
                committed[(tp.topic, tp.partition)] = tp.offset
                partitions.add((tp.topic, tp.partition))
    except (KafkaException, TimeoutError) as exc:
        notes.append(f"cannot read the committed offsets of group {settings.group_id!r}: {exc.args[0] if exc.args else exc}")
    # Workers read with librdkafka's default isolation (read_committed): their end is the last stable offset.
    read_committed = settings.kafka.get("isolation.level", "read_committed") == "read_committed"
    isolation = IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
    log_end, log_start = {}, {}
    for spec, into in ((OffsetSpec.latest(), log_end), (OffsetSpec.earliest(), log_start)):
        if not partitions:
            continue
        futures = admin.list_offsets({TopicPartition(t, p): spec for t, p in partitions}, isolation_level=isolation,
                                     request_timeout=remaining())
        for tp, future in futures.items():
            try:
                into[(tp.topic, tp.partition)] = future.result(timeout=remaining()).offset
            except (KafkaException, TimeoutError) as exc:
                notes.append(f"cannot list offsets of {tp.topic}[{tp.partition}]: {exc.args[0] if exc.args else exc}")
    lag = partition_lag(partitions, committed=committed, log_end=log_end, log_start=log_start, owners=owners,
                        reset_to_earliest=settings.auto_offset_reset == "earliest")
    # a group with neither members nor committed offsets is not a group the workers run (a typo, or not
    # started yet): its "lag" would be every record kept, so none is claimed
    group["known"] = bool(group["members"] or committed) or group["state"] not in ("empty", "dead", "unknown")
    if not group["known"]:
        for row in lag:
            row["lag"] = None
        known = [g for g in _known_groups(admin, remaining()) if g != settings.group_id]
        guess = did_you_mean(settings.group_id, known)
        notes.append(f"unknown group {shown(settings.group_id)}: no members and no committed offsets (a mistyped "
                     "--group-id, or workers that never committed)" + (f"; did you mean {shown(guess)}?" if guess else "")
                     + (f"; groups on the broker: {', '.join(shown(g) for g in known[:20])}" if known else ""))

    # what is monitored, from the window summaries; what is firing, from the alerts
    reads: dict[str, dict[str, Any]] = {}

    def read(topic: str, since_ms: int | None, setting: str) -> list[dict[str, Any]]:
        if topic not in existing:
            notes.append(f"topic {topic!r} does not exist yet (setting {setting})")
            reads[setting] = {"topic": topic, "records": 0, "complete": False}
            return []
        records, complete = _read_to_end(settings, topic, sorted(metadata[topic].partitions),
                                         deadline=deadline, since_ms=since_ms)
        if not complete:
            notes.append(f"topic {topic!r} was not read to its end within --read-timeout {timeout:g} s; the tables may be incomplete")
        reads[setting] = {"topic": topic, "records": len(records), "complete": complete}
        return records

    since_ms = int((time.time() - since_seconds) * 1000) if since_seconds > 0 else None
    summaries = read(settings.metrics_topic, since_ms, "metrics_topic")
    alert_records = read(settings.alerts_topic, None, "alerts_topic")
    features = monitored_features(summaries)
    alerts = active_alerts(alert_records)
    performance = model_performance(summaries)
    quality = None
    if model is not None:
        seen = {str(r.get("model")) for r in summaries + alert_records if r.get("model") is not None}
        if model not in seen:
            raise ConfigError(unknown_value("--model", model, sorted(seen)) + f": no window summary in the last "
                              f"--since {since_seconds:g} s and no alert names it")
        features = [f for f in features if f["model"] == model]
        alerts = [a for a in alerts if str(a.get("model")) == model]
        performance = [p for p in performance if p["model"] == model]
        quality = {"model": model, "windows": performance_windows(summaries, model),
                   "concept_drift_alerts": concept_drift_alerts(alert_records, model)}
    firing = firing_detectors(alerts)
    for row in features:
        row["firing"] = sorted(firing.get((row["model"], row["model_version"], row["feature"]), []))

    dead: dict[str, Any] = {"topic": settings.deadletter_topic, "total": 0, "by_reason": {}, "complete": False}
    if settings.deadletter_topic in existing:
        by_reason, count, complete = _read_reasons(settings, settings.deadletter_topic,
                                                   sorted(metadata[settings.deadletter_topic].partitions),
                                                   deadline=deadline, since_ms=since_ms)
        dead.update(total=count, by_reason=by_reason, complete=complete)
        if not complete:
            notes.append(f"topic {settings.deadletter_topic!r} was not read to its end within --timeout {timeout:g} s; "
                         "the dead-letter counts may be incomplete")
    else:
        notes.append(f"topic {settings.deadletter_topic!r} does not exist yet (setting deadletter_topic)")
    reads["deadletter_topic"] = {"topic": settings.deadletter_topic, "records": dead["total"], "complete": dead["complete"]}
    report = {"bootstrap_servers": settings.bootstrap_servers, "group": group, "partitions": lag,
              "total_lag": sum(r["lag"] for r in lag if r["lag"] is not None) if group["known"] else None,
              "models": monitored_models(features), "features": features,
              "open_incidents": open_incidents(alerts, features), "active_alerts": alerts,
              "performance": performance, "dead_letters": dead,
              "read": reads, "summaries_since_seconds": since_seconds or None, "notes": notes}
    if quality is not None:
        report["model_quality"] = quality
    return report


def firing_detectors(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[str]]:
    """(model, model_version, feature) → detectors firing, from the active alerts (a record on the
    alerts topic may lack any field or hold any JSON value in it)."""
    firing: dict[tuple[str, str, str], list[str]] = {}
    for a in alerts:
        firing.setdefault((str(a.get("model")), str(a.get("model_version")), str(a.get("feature"))), []).append(
            str(a.get("detector")))
    return firing


def _fmt(value: object, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


_STATE_STYLE = {"stable": "green", "empty": "yellow", "dead": "red", "unknown": "red"}


#: (statistic, column title, format) of the features tables: mean shift in reference sd, spread ratio,
#: KS, PSI (numeric and categorical), Jensen-Shannon (categorical).
_STATISTICS = (("mean_shift_sd", "shift sd", "+.2f"), ("spread_ratio", "spread", ".2f"), ("ks", "KS", ".3f"),
               ("psi", "PSI", ".3f"), ("jensen_shannon", "JS", ".3f"))


def _features_table(model: dict[str, Any], features: list[dict[str, Any]]) -> Table:
    """One model version's features; the reference goes in the title when all share it."""
    references = {tuple(f["references"]) for f in features}
    uniform = len(references) == 1
    title = f"{model['model']} {model['model_version']}"
    if uniform:
        title += f" (reference {', '.join(next(iter(references)))})"
    table = Table(title=title, title_justify="left", caption="newest window of each partition; statistics at their worst",
                  caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("feature", overflow="fold")
    table.add_column("type")
    if not uniform:
        table.add_column("reference")
    for _, column, _ in _STATISTICS:
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("missing", justify="right", no_wrap=True)
    table.add_column("firing", justify="right", no_wrap=True)
    for f in features:
        d = f["drift"]
        kind = {"numeric": "num", "categorical": "cat"}.get(f["feature_type"], f["feature_type"])
        cells = [f["feature"], kind] + ([", ".join(f["references"])] if not uniform else [])
        cells += [_fmt(d.get(name), spec) for name, _, spec in _STATISTICS]
        cells += [_fmt(f["missing_ratio"], ".1%"),
                  Text(str(len(f["firing"])) if f["firing"] else "-", style="bold red" if f["firing"] else "dim")]
        table.add_row(*cells)
    return table


#: Features named per incident in the table (the JSON document has them all).
_INCIDENT_FEATURES = 12


def _incidents_table(incidents: list[dict[str, Any]]) -> Table:
    """Open model incidents: one row each, with its features, kinds and detectors."""
    table = Table(title=f"open incidents ({len(incidents)})", title_justify="left")
    for column in ("severity", "model", "version", "incident", "opened (event time)", "features", "kinds", "detectors"):
        table.add_column(column, overflow="fold", no_wrap=column == "severity")
    for i in incidents:
        names = i["features"]
        shown = ", ".join(names[:_INCIDENT_FEATURES]) + (f" and {len(names) - _INCIDENT_FEATURES} more"
                                                         if len(names) > _INCIDENT_FEATURES else "")
        ident = i["incident_id"]
        table.add_row(Text(str(i["severity"]).upper(), style="bold red" if i["severity"] == "critical" else "yellow"),
                      i["model"], i["model_version"], (ident if len(ident) <= 32 else ident[:32] + "…") if ident else "-", i["opened_event_time"] or "-",
                      f"{len(names)}: {shown}", ", ".join(i["kinds"]), ", ".join(i["detectors"]) or "-")
    return table


def _metric_name(metric: str) -> str:
    return {"accuracy": "accuracy", "mae": "MAE"}.get(metric, metric)


def _metric_value(metric: str, value: object) -> str:
    return _fmt(value, ".1%") if metric == "accuracy" else _fmt(value, ".4g")


def _performance_table(rows: list[dict[str, Any]]) -> Table:
    """Per model version with labels: label coverage and the newest windows' accuracy or MAE."""
    table = Table(title="model quality (labels joined; newest window of each partition)", title_justify="left")
    for column, justify in (("model", "left"), ("version", "left"), ("task", "left"), ("metric", "left"),
                            ("newest window", "right"), ("since start", "right"), ("labeled", "right"),
                            ("label coverage", "right"), ("window end", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r["model"], r["model_version"], r["task"], _metric_name(r["metric"]),
                      _metric_value(r["metric"], r["value"]), _metric_value(r["metric"], r["cumulative"]),
                      f"{r['labeled']:,} of {r['inferences']:,}", _fmt(r["label_coverage_total"], ".1%"),
                      r["last_event_time"] or "-")
    return table


#: Windows of ``status --model`` shown in the table (the JSON document has them all).
_WINDOWS_SHOWN = 30


def _windows_table(quality: dict[str, Any]) -> RenderableType:
    windows = quality["windows"]
    if not windows:
        return Text(f"{quality['model']}: no performance summaries (no labels joined, or labels_topic unset)", style="dim")
    shown_rows = windows[-_WINDOWS_SHOWN:]
    table = Table(title=f"{quality['model']}: performance per window" + (
        f" (newest {len(shown_rows)} of {len(windows)})" if len(windows) > len(shown_rows) else ""), title_justify="left")
    for column, justify in (("window end", "left"), ("version", "left"), ("partition", "left"), ("metric", "left"),
                            ("value", "right"), ("labeled", "right"), ("inferences", "right"), ("coverage", "right")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for w in shown_rows:
        table.add_row(w["last_event_time"] or "-", w["model_version"], str(w["partition"]), _metric_name(w["metric"]),
                      _metric_value(w["metric"], w["value"]), f"{w['labeled']:,}", f"{w['inferences']:,}",
                      _fmt(w["label_coverage"], ".1%"))
    return table


def _concept_table(quality: dict[str, Any]) -> RenderableType:
    found = quality["concept_drift_alerts"]
    if not found:
        return Text(f"{quality['model']}: no concept-drift alerts", style="green")
    table = Table(title=f"{quality['model']}: concept-drift alerts ({len(found)})", title_justify="left")
    for column in ("event time", "version", "status", "severity", "detector", "summary"):
        table.add_column(column, overflow="fold")
    for a in found:
        table.add_row(a["event_time"] or "-", a["model_version"],
                      Text(a["status"].upper(), style="bold red" if a["status"] == "firing" else "green"),
                      a["severity"], a["detector"], a["summary"])
    return table


def _dead_letters(dead: dict[str, Any], since: object) -> RenderableType:
    span = f"last {since:g} s" if isinstance(since, (int, float)) and since else "whole topic"
    if not dead["total"]:
        return Text(f"no dead letters on {dead['topic']} ({span})", style="green")
    title = f"dead letters on {dead['topic']} ({span}): {dead['total']:,}"
    table = Table(title=title, title_justify="left", min_width=min(len(title), 120))
    table.add_column("reason", overflow="fold")
    table.add_column("records", justify="right")
    for reason, count in dead["by_reason"].items():
        table.add_row(reason, f"{count:,}")
    return table


def render(report: dict[str, Any]) -> list[RenderableType]:
    """The report as rich renderables: group, lag, models, features, active alerts."""
    group = report["group"]
    out: list[RenderableType] = []
    head = Text()
    head.append(f"group {group['group_id']}", style="bold")
    head.append(f" on {report['bootstrap_servers']}: ")
    if group.get("known", True):
        head.append(group["state"], style=_STATE_STYLE.get(group["state"], ""))
    else:
        head.append("unknown group (see the note below)", style="bold red")
    head.append(f", {len(group['members'])} member(s)")
    if group.get("coordinator"):
        head.append(f", coordinator {group['coordinator']}", style="dim")
    out.append(head)

    members = Table(title="members", title_justify="left")
    for column in ("client id", "host", "member id", "partitions"):
        members.add_column(column)
    for m in group["members"]:
        members.add_row(m["client_id"] or "-", m["host"] or "-", m["member_id"],
                        ", ".join(f"{t}[{p}]" for t, p in m["partitions"]) or "-")
    if group["members"]:
        out.append(members)

    total = report["total_lag"]
    lag = Table(title=f"lag (total {total:,})" if total is not None else "lag (unknown: the group has no committed offsets)",
                title_justify="left")
    for column, justify in (("topic", "left"), ("partition", "right"), ("member", "left"), ("committed", "right"),
                            ("log end", "right"), ("lag", "right")):
        lag.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in report["partitions"]:
        lag.add_row(r["topic"], str(r["partition"]), r["member"] or "-", _fmt(r["committed"], ","),
                    _fmt(r["log_end"], ","), Text(_fmt(r["lag"], ","), style="yellow" if r["lag"] else ""))
    out.append(lag)

    models = Table(title="models", title_justify="left")
    for column in ("model", "version", "reference", "features", "outputs", "partitions", "newest window"):
        models.add_column(column)
    for m in report["models"]:
        partitions = {p for f in report["features"] if (f["model"], f["model_version"]) == (m["model"], m["model_version"])
                      for p in f["partitions"]}
        models.add_row(m["model"], m["model_version"], ", ".join(m["references"]), str(len(m["features"])),
                       ", ".join(m["outputs"]) or "-", str(len(partitions)), m["last_event_time"] or "-")
    out.append(models if report["models"] else Text("no window summaries yet: nothing monitored, or no window closed", style="dim"))

    for m in report["models"]:
        out.append(_features_table(m, [f for f in report["features"]
                                       if (f["model"], f["model_version"]) == (m["model"], m["model_version"])]))

    performance = report.get("performance") or []
    if performance:
        out.append(_performance_table(performance))
    quality = report.get("model_quality")
    if quality is not None:
        out.append(_windows_table(quality))
        out.append(_concept_table(quality))

    incidents = report.get("open_incidents", [])
    out.append(_incidents_table(incidents) if incidents else Text("no open incidents", style="green"))

    out.append(Text(f"active alerts ({len(report['active_alerts'])})", style="italic"))
    alerts = Table.grid(padding=(0, 2))
    alerts.add_column(no_wrap=True)
    alerts.add_column()
    for a in report["active_alerts"]:
        what = Text()
        what.append(a["alert_key"], style="bold")
        what.append(f"  {a.get('kind', '-')}  firing since {a.get('firing_since') or '-'}")
        if a.get("firing_records", 1) > 1:
            what.append(f" ({a['firing_records']} firing records)")
        what.append("\n" + str(a.get("summary", "")).strip(), style="")
        alerts.add_row(Text(str(a.get("severity", "-")).upper(),
                            style="bold red" if a.get("severity") == "critical" else "yellow"), what)
    out.append(alerts if report["active_alerts"] else Text("no active alerts", style="green"))
    dead = report.get("dead_letters")
    if dead is not None:
        out.append(_dead_letters(dead, report.get("summaries_since_seconds")))
    for note in report["notes"]:
        out.append(Text(f"note: {note}", style="yellow"))
    return out


def status(settings: Settings, args: argparse.Namespace) -> int:
    """Print the status of the worker group (rich tables, or ``--json``)."""
    if not args.timeout > 0:
        raise ConfigError(f"invalid --read-timeout {args.timeout:g}: seconds to read the group and the topics, more than 0")
    if not args.since >= 0:
        raise ConfigError(f"invalid --since {args.since:g}: seconds of window summaries to read, 0 for all of them")
    report = collect(settings, timeout=args.timeout, since_seconds=args.since, model=getattr(args, "model", None))
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    # markup off: topic, model and feature names are data, and "[...]" in them must print as it is;
    # their control characters are escaped (a name must not move the cursor or start a line).
    # The notes (what could not be read) are diagnostics: on stderr.
    shown = escaped(report)
    results(highlight=False, markup=False).print(Group(*render({**shown, "notes": []})))
    notes = diagnostics(highlight=False, markup=False)
    for note in shown["notes"]:
        notes.print(Text(f"note: {note}", style="yellow"))
    return 0

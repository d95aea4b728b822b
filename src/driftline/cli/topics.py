"""``driftline topics create``: every topic driftline reads or writes, with its configs.

Missing topics are created; existing ones are left as they are, and what the
table shows of every topic is read back from the broker (its partition count
and its configs), not what driftline would have set.  What driftline needs
and an existing topic lacks is said on stderr, and the exit code is 1:

* the references and state topics compacted (``cleanup.policy`` with
  ``compact``): otherwise retention deletes the profiles in force and the
  checkpoints;
* the labels topic with the partition count of every input topic: labels
  and inferences of a model meet on the same partition number.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from driftline.cli.output import diagnostics, print_json, results
from driftline.config import Settings
from driftline.errors import ConfigError
from driftline.redact import escape

__all__ = ["create", "mismatches", "read_configs"]

#: Kafka's default ``cleanup.policy`` (a broker that describes only the configs set, e.g. tansu, omits it).
DEFAULT_CLEANUP_POLICY = "delete"


def read_configs(admin: Any, topics: list[str], timeout: float) -> dict[str, dict[str, str]]:
    """The configs the broker describes of each topic (``{}`` for one it does not answer for)."""
    from confluent_kafka.admin import ConfigResource

    out: dict[str, dict[str, str]] = {t: {} for t in topics}
    if not topics:
        return out
    futures = admin.describe_configs([ConfigResource("topic", t) for t in topics], request_timeout=timeout)
    for resource, future in futures.items():
        try:
            entries = future.result(timeout + 1.0)
        except Exception:  # noqa: BLE001 - a topic the broker does not describe: shown as unknown
            continue
        out[resource.name] = {k: str(e.value) for k, e in entries.items() if e.value is not None}
    return out


def mismatches(settings: Settings, counts: dict[str, int], configs: dict[str, dict[str, str]]) -> list[str]:
    """What the existing topics lack of what driftline needs, one sentence each.

    >>> from driftline.config import load_settings
    >>> s = load_settings(input_topics="in", labels_topic="lab", references_topic="refs", state_topic="st")
    >>> for line in mismatches(s, {"in": 3, "lab": 2, "refs": 1, "st": 1}, {"refs": {"cleanup.policy": "delete"},
    ...                                                                   "st": {"cleanup.policy": "compact"}}):
    ...     print(line)
    references topic 'refs' has cleanup.policy=delete, not compact: retention will delete the profiles in force (alter it: kafka-configs --alter --entity-type topics --entity-name refs --add-config cleanup.policy=compact)
    labels topic 'lab' has 2 partition(s) but input topic 'in' has 3: labels and inferences of a model must land on the same partition number (workers refuse to start); recreate one of them with the other's count
    """
    out = []
    for role, topic in (("references", settings.references_topic), ("state", settings.state_topic)):
        if not topic or topic not in counts:
            continue
        policy = configs.get(topic, {}).get("cleanup.policy", DEFAULT_CLEANUP_POLICY)
        if "compact" not in {p.strip() for p in policy.split(",")}:
            what = "the profiles in force" if role == "references" else "the worker checkpoints"
            out.append(f"{role} topic {topic!r} has cleanup.policy={policy}, not compact: retention will delete "
                       f"{what} (alter it: kafka-configs --alter --entity-type topics --entity-name {topic} "
                       "--add-config cleanup.policy=compact)")
    labels = settings.labels_topic
    if labels and labels in counts:
        for topic in settings.input_topics:
            if topic in counts and counts[topic] != counts[labels]:
                out.append(f"labels topic {labels!r} has {counts[labels]} partition(s) but input topic {topic!r} has "
                           f"{counts[topic]}: labels and inferences of a model must land on the same partition number "
                           "(workers refuse to start); recreate one of them with the other's count")
    return out


def create(settings: Settings, args: argparse.Namespace) -> int:
    """Create the input, labels, output and references topics that are missing; show them all as they are."""
    from driftline.transport import kafka

    admin = kafka.make_admin(settings)
    existing = kafka.check_broker(admin, settings)
    partitions = args.partitions or settings.topic_partitions
    created = kafka.create_topics(admin, [t for t in settings.input_topics if t not in existing], {}, partitions,
                                  settings.topic_replication_factor, settings.broker_timeout_seconds)
    created += kafka.ensure_topics(admin, settings, existing | set(created))
    # the labels topic takes the input topics' partition count (a mismatch is reported below)
    try:
        created += kafka.check_labels_topic(admin, settings.model_copy(update={"create_topics": True}), existing)
    except ConfigError:
        pass
    counts = kafka.partition_counts(admin, settings)
    roles = {t: "input" for t in settings.input_topics}
    if settings.labels_topic:
        roles[settings.labels_topic] = "labels"
    roles.update({settings.alerts_topic: "alerts", settings.metrics_topic: "window summaries",
                  settings.deadletter_topic: "dead letters", settings.references_topic: "reference profiles"})
    if settings.state_topic:
        roles[settings.state_topic] = "worker state checkpoints"
    configs = read_configs(admin, [t for t in roles if t in counts], min(10.0, settings.broker_timeout_seconds))
    wanted = {settings.alerts_topic: "alerts", settings.metrics_topic: "metrics", settings.deadletter_topic: "deadletter",
              settings.references_topic: "references"}
    if settings.state_topic:
        wanted[settings.state_topic] = "state"
    rows = []
    for topic, role in roles.items():
        have = configs.get(topic, {})
        # the configs driftline sets on such a topic, and cleanup.policy, as the broker has them
        names = ["cleanup.policy"] + [k for k in kafka.OUTPUT_TOPIC_CONFIGS.get(wanted.get(topic, ""), {}) if k != "cleanup.policy"]
        shown = {k: have[k] for k in names if k in have}
        if "cleanup.policy" not in have and topic in counts:
            shown = {"cleanup.policy": f"{DEFAULT_CLEANUP_POLICY} (default)", **shown}
        rows.append({"topic": topic, "role": role, "partitions": counts.get(topic), "created": topic in created,
                     "configs": shown})
    problems = mismatches(settings, counts, configs)
    if getattr(args, "json", False):
        print_json({"bootstrap_servers": settings.bootstrap_servers, "topics": rows, "mismatches": problems})
    else:
        table = Table(title=f"driftline topics on {settings.bootstrap_servers}", title_justify="left")
        for column in ("topic", "role", "partitions", "created now", "configs (read back from the broker)"):
            table.add_column(column, overflow="fold")
        for row in rows:
            config = ", ".join(f"{k}={v}" for k, v in row["configs"].items()) or "-"
            table.add_row(row["topic"], row["role"], str(row["partitions"] if row["partitions"] is not None else "?"),
                          "yes" if row["created"] else "no", config)
        results(highlight=False, markup=False).print(table)
    err = diagnostics(highlight=False)
    for line in problems:  # topic names are data: no markup, control characters escaped
        err.print(Text(f"mismatch: {escape(line)}", style="yellow"), soft_wrap=True)
    return 1 if problems else 0

"""``driftline topics create``: every topic driftline reads or writes, with its configs."""

from __future__ import annotations

import argparse

from rich.table import Table

from driftline.cli.output import print_json, results
from driftline.config import Settings

__all__ = ["create"]


def create(settings: Settings, args: argparse.Namespace) -> int:
    """Create the input, labels, output and references topics that are missing; show them all."""
    from driftline.transport import kafka

    admin = kafka.make_admin(settings)
    existing = kafka.check_broker(admin, settings)
    partitions = args.partitions or settings.topic_partitions
    created = kafka.create_topics(admin, [t for t in settings.input_topics if t not in existing], {}, partitions,
                                  settings.topic_replication_factor, settings.broker_timeout_seconds)
    created += kafka.ensure_topics(admin, settings, existing | set(created))
    # the labels topic takes the input topics' partition count (and is checked against it)
    created += kafka.check_labels_topic(admin, settings.model_copy(update={"create_topics": True}), existing)
    counts = kafka.partition_counts(admin, settings)
    configs = {
        settings.alerts_topic: kafka.OUTPUT_TOPIC_CONFIGS["alerts"],
        settings.metrics_topic: kafka.OUTPUT_TOPIC_CONFIGS["metrics"],
        settings.deadletter_topic: kafka.OUTPUT_TOPIC_CONFIGS["deadletter"],
        settings.references_topic: kafka.OUTPUT_TOPIC_CONFIGS["references"],
    }
    if settings.state_topic:
        configs[settings.state_topic] = kafka.OUTPUT_TOPIC_CONFIGS["state"]
    roles = {t: "input" for t in settings.input_topics}
    if settings.labels_topic:
        roles[settings.labels_topic] = "labels"
    roles.update({settings.alerts_topic: "alerts", settings.metrics_topic: "window summaries",
                  settings.deadletter_topic: "dead letters", settings.references_topic: "reference profiles"})
    if settings.state_topic:
        roles[settings.state_topic] = "worker state checkpoints"
    rows = [{"topic": topic, "role": role, "partitions": counts.get(topic), "created": topic in created,
             "configs": dict(configs.get(topic, {}))} for topic, role in roles.items()]
    if getattr(args, "json", False):
        print_json({"bootstrap_servers": settings.bootstrap_servers, "topics": rows})
        return 0
    table = Table(title=f"driftline topics on {settings.bootstrap_servers}", title_justify="left")
    for column in ("topic", "role", "partitions", "created now", "configs set at creation"):
        table.add_column(column)
    for row in rows:
        config = ", ".join(f"{k}={v}" for k, v in row["configs"].items()) or "-"
        table.add_row(row["topic"], row["role"], str(row["partitions"] if row["partitions"] is not None else "?"),
                      "yes" if row["created"] else "no", config)
    results(highlight=False, markup=False).print(table)
    return 0

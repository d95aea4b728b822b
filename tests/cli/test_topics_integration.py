"""``driftline topics create`` against a real broker."""

import uuid

import orjson
import pytest
from confluent_kafka.admin import ConfigResource

from driftline.cli.main import main

pytestmark = pytest.mark.integration


def test_creates_every_topic_once_with_its_configs(broker, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # without a terminal the table is printed whole anyway
    tag = uuid.uuid4().hex[:6] + "-" + "t" * 100
    names = {"input_topics": f"in-{tag}", "labels_topic": f"lab-{tag}", "alerts_topic": f"al-{tag}",
             "metrics_topic": f"me-{tag}", "deadletter_topic": f"dl-{tag}", "references_topic": f"rf-{tag}"}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in names.items()]
    common = ["topics", "create", "--bootstrap-servers", broker.bootstrap_servers, "--topic-replication-factor", "1",
              "--partitions", "3", *flags]
    assert main(common) == 0
    out = capsys.readouterr().out
    for topic in names.values():
        assert topic in out
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[names["input_topics"]].partitions) == 3 == len(topics[names["labels_topic"]].partitions)
    assert len(topics[names["references_topic"]].partitions) == 1
    described = admin.describe_configs([ConfigResource("topic", names["references_topic"])])
    config = next(iter(described.values())).result(10)
    assert config["cleanup.policy"].value == "compact"
    # a second run creates nothing and says so, also to scripts
    assert main(common) == 0
    assert "yes" not in capsys.readouterr().out.split("created now")[1]
    assert main([*common, "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    rows = {row["topic"]: row for row in doc["topics"]}
    assert set(names.values()) <= set(rows) and not any(row["created"] for row in rows.values())
    assert rows[names["references_topic"]]["configs"]["cleanup.policy"] == "compact"
    assert rows[names["input_topics"]]["partitions"] == 3 and rows[names["input_topics"]]["role"] == "input"


def test_existing_topics_are_shown_as_they_are_and_mismatches_named(broker, capsys, monkeypatch):
    """A references topic created without compaction and a labels topic partitioned unlike the inputs: the
    table shows what the broker has (not what driftline would have set), and both mismatches are named."""
    from confluent_kafka.admin import AdminClient, NewTopic

    monkeypatch.setenv("COLUMNS", "200")
    tag = uuid.uuid4().hex[:6]
    names = {"input_topics": f"in-{tag}", "labels_topic": f"lab-{tag}", "alerts_topic": f"al-{tag}",
             "metrics_topic": f"me-{tag}", "deadletter_topic": f"dl-{tag}", "references_topic": f"rf-{tag}"}
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    futures = admin.create_topics([NewTopic(names["input_topics"], num_partitions=3, replication_factor=1),
                                   NewTopic(names["labels_topic"], num_partitions=2, replication_factor=1),
                                   NewTopic(names["references_topic"], num_partitions=1, replication_factor=1)])
    for f in futures.values():
        f.result(10)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in names.items()]
    assert main(["topics", "create", "--bootstrap-servers", broker.bootstrap_servers,
                 "--topic-replication-factor", "1", *flags]) == 1
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if names["references_topic"] in line)
    assert "cleanup.policy=delete" in row and "compact" not in row
    err = " ".join(captured.err.split())
    assert f"references topic '{names['references_topic']}' has cleanup.policy=delete, not compact" in err
    assert f"labels topic '{names['labels_topic']}' has 2 partition(s) but input topic '{names['input_topics']}' has 3" in err

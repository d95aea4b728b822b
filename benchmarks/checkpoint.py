"""Checkpoint size per monitored feature and restore time for 10,000 features.

Warms ``--models`` model versions of ``--features`` numeric features each on
one partition through the real pipeline, then measures:

* encoding the partition's checkpoint (bytes per feature, seconds);
* decoding it and restoring a fresh pipeline (seconds);
* the round trip through Kafka: writing it to a state topic of the embedded
  broker (tansu) and what a newly assigned worker does, reading the topic,
  decoding and restoring (seconds).

Usage: python benchmarks/checkpoint.py [--models 20] [--features 500]
"""

from __future__ import annotations

import argparse
import time
import uuid

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.state.checkpoint import decode_state, encode_state
from driftline.transport.worker import pipeline_settings

T0 = 1_700_000_000_000


def warm_pipeline(settings, models: int, features: int, events: int) -> Pipeline:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    pipeline = Pipeline(pipeline_settings(settings))
    for m in range(models):
        values = rng.normal(size=(events, features))
        batch = [SourceRecord("in", 0, m * events + i, T0 + i, None, orjson.dumps(
            {"model": f"m{m}", "timestamp": T0 + i, "features": dict(zip(names, values[i].tolist()))}), ())
            for i in range(events)]
        for i in range(0, len(batch), 2000):
            pipeline.process(batch[i:i + 2000])
    return pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--features", type=int, default=500)
    parser.add_argument("--events", type=int, default=2_600, help="events per model (warm-up is 2,000)")
    parser.add_argument("--no-kafka", action="store_true", help="skip the round trip through the embedded broker")
    args = parser.parse_args()
    settings = load_settings(bootstrap_servers="x:1", labels_topic="", max_models=max(100, args.models),
                             max_features_per_model=max(500, args.features), window_events=1000)
    started = time.perf_counter()
    pipeline = warm_pipeline(settings, args.models, args.features, args.events)
    warm_s = time.perf_counter() - started
    features = pipeline.feature_count
    offset = args.models * args.events
    rows = []

    started = time.perf_counter()
    data = encode_state(pipeline.snapshot("in", 0, offset))
    encode_s = time.perf_counter() - started
    rows.append(("encode (snapshot + checkpoint encoding)", f"{encode_s:.2f}", f"{len(data) / 2**20:.1f} MB",
                 f"{len(data) / features / 1024:.1f} KB"))

    started = time.perf_counter()
    fresh = Pipeline(pipeline_settings(settings))
    fresh.restore(decode_state(data))
    restore_s = time.perf_counter() - started
    assert fresh.feature_count == features
    rows.append(("decode + restore (in memory)", f"{restore_s:.2f}", "", ""))

    if not args.no_kafka:
        from confluent_kafka import Producer

        from driftline.demo.broker import EmbeddedBroker
        from driftline.transport import kafka
        from driftline.transport.checkpoints import CheckpointStore

        with EmbeddedBroker() as broker:
            tag = uuid.uuid4().hex[:6]
            s = load_settings(bootstrap_servers=broker.bootstrap_servers, state_topic=f"state-{tag}", group_id=f"g-{tag}",
                              topic_replication_factor=1, topic_partitions=1, labels_topic="",
                              max_features_per_model=max(500, args.features))
            admin = kafka.make_admin(s)
            kafka.create_topics(admin, [s.state_topic], {s.state_topic: kafka.OUTPUT_TOPIC_CONFIGS["state"]}, 1, 1, 10)
            store = CheckpointStore(s, 1)
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
            started = time.perf_counter()
            store.write(producer, pipeline.snapshot("in", 0, offset), lambda err, msg: None)
            assert producer.flush(60) == 0
            write_s = time.perf_counter() - started
            rows.append(("write to the state topic (encode + produce + flush)", f"{write_s:.2f}", "", ""))
            started = time.perf_counter()
            reader = CheckpointStore(s, 1)
            found = reader.read([("in", 0)], {}, exactly_once=False)[("in", 0)]
            assert found.state is not None, found
            target = Pipeline(pipeline_settings(settings))
            target.restore(found.state)
            read_s = time.perf_counter() - started
            assert target.feature_count == features
            rows.append(("restore on assignment (read topic + decode + restore)", f"{read_s:.2f}", "", ""))

    table = Table(title=f"Checkpoint of {features:,} monitored features ({args.models} models × {args.features}; "
                        f"warmed in {warm_s:.0f} s)")
    for column in ("step", "seconds", "size", "per feature"):
        table.add_column(column, justify="right" if column != "step" else "left")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()

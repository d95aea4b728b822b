"""Kafka transport: clients, topics and the worker loop (the only place confluent-kafka is used)."""

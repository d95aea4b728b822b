"""Observability: Prometheus metrics, the metrics/health HTTP endpoint, structured logs."""

"""Detection: per-model monitors, findings, the alert lifecycle and the batch pipeline. No I/O."""

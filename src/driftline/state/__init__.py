"""Per-feature state: moments, quantile sketches, category counts, change detectors."""

"""The driftline command line."""

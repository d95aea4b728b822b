"""The embedded broker and synthetic traffic behind ``driftline demo`` (and the tests)."""

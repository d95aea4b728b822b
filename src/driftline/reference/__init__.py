"""Reference profiles: what a model saw on known-good data, built from files and compared with the stream."""

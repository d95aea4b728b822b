"""The input contract: what a model server sends, how it is decoded, its JSON Schema."""

"""Model backends and the embedded default model."""

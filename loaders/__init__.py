"""Checkpoint formats: detect, rename keys, infer configs, build core or pack objects."""

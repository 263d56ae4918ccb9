"""Bundled datasets, model specs and builders, checkpoints (safetensors)."""

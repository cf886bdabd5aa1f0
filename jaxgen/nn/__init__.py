"""Reusable Flax layers and networks (not whole models)."""

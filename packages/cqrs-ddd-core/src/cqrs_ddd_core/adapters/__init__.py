"""Adapters shipped with the core package (in-memory fakes)."""

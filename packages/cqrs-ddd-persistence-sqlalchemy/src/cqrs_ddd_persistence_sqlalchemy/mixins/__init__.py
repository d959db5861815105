"""Reusable column mixins for application models."""

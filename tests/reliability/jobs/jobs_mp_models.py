"""The effects table the multi-process job tests count executions in."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

effects_metadata = MetaData()
job_effects = Table(
    "job_effects",
    effects_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("n", Integer, nullable=False),
    Column("worker", String(32), nullable=False),
)

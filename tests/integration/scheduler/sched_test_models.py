"""Commands and helpers shared by the scheduler tests (also used by subprocess workers)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table

effects_metadata = MetaData()
sched_effects = Table(
    "sched_effects",
    effects_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("n", Integer, nullable=False),
    Column("worker", String(32), nullable=False),
)


class SendReminder(BaseModel):
    n: int


class Report(BaseModel):
    __command_type__ = "BuildReport"
    kind: str = "daily"

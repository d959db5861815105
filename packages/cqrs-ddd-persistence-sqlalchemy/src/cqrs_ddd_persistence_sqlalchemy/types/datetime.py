"""``UTCDateTime``: aware UTC datetimes on every database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime"]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that only accepts aware values and returns aware UTC ones.

    PostgreSQL stores ``timestamptz``; SQLite has no zone, so values are normalised to UTC
    before they are written and marked UTC when read. A naive datetime is refused rather than
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"UTCDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: UTCDateTime needs an aware datetime")
        utc: dt.datetime = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            # Stored as text without offset so that text order is time order.
            return utc.replace(tzinfo=None)
        return utc

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.driver == "asyncpg":
            # asyncpg decodes timestamptz to aware datetimes in UTC already: no per-row call
            # (it was the biggest single cost of a 1,000-event replay after pydantic).
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        parsed: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)

    @property
    def python_type(self) -> type[dt.datetime]:
        return dt.datetime

from __future__ import annotations

import enum
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from sqlalchemy import exc as sa_exc

from cqrs_ddd_core.errors import (
    ConnectionLostError,
    DeadlockError,
    LockTimeoutError,
    MissingSchemaError,
    SerializationError,
    SerializationFailureError,
    UniqueViolationError,
    WrongExpectedVersionError,
)
from cqrs_ddd_persistence_sqlalchemy import json_dumps, json_loads
from cqrs_ddd_persistence_sqlalchemy.errors import translate


class Color(enum.Enum):
    RED = "red"


def test_json_codec_handles_domain_values() -> None:
    value = {
        "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2024, 1, 2),
        "id": UUID(int=5),
        "price": Decimal("10.000000000000000001"),
        "color": Color.RED,
    }
    assert json_loads(json_dumps(value)) == {
        "at": "2024-01-02T03:04:05+00:00",
        "day": "2024-01-02",
        "id": "00000000-0000-0000-0000-000000000005",
        "price": "10.000000000000000001",
        "color": "red",
    }
    with pytest.raises(SerializationError):
        json_dumps({"x": object()})
    with pytest.raises(SerializationError):
        json_loads("{not json")


class _PgError(Exception):
    def __init__(self, sqlstate: str, constraint: str | None = None) -> None:
        super().__init__(f"pg error {sqlstate}")
        self.sqlstate = sqlstate
        self.constraint_name = constraint


def _wrap(orig: BaseException) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("stmt", {}, orig)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("40001", SerializationFailureError),
        ("40P01", DeadlockError),
        ("57P01", ConnectionLostError),
        ("08006", ConnectionLostError),
        ("23505", UniqueViolationError),
        ("42P01", MissingSchemaError),
        ("55P03", LockTimeoutError),
    ],
)
def test_sqlstate_translation(sqlstate: str, expected: type[Exception]) -> None:
    error = translate(_wrap(_PgError(sqlstate)))
    assert type(error) is expected


def test_constraint_specific_translation() -> None:
    error = translate(
        _wrap(_PgError("23505", "uq_events_stream_id_version")),
        constraints={"uq_events_stream_id_version": lambda e: WrongExpectedVersionError("s", 1, 2)},
    )
    assert isinstance(error, WrongExpectedVersionError)


def test_sqlite_translation_uses_error_names() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a INTEGER, b INTEGER, CONSTRAINT uq_t_a_b UNIQUE (a, b))")
    conn.execute("INSERT INTO t VALUES (1, 2)")
    with pytest.raises(sqlite3.IntegrityError) as info:
        conn.execute("INSERT INTO t VALUES (1, 2)")
    error = translate(_wrap(info.value))
    assert isinstance(error, UniqueViolationError)
    assert error.constraint == "t(a, b)"
    with pytest.raises(sqlite3.OperationalError) as missing:
        conn.execute("SELECT * FROM nope")
    assert isinstance(translate(_wrap(missing.value)), MissingSchemaError)


def test_non_database_errors_are_not_translated() -> None:
    assert translate(KeyError("x")) is None


_JSON_VALUES = [
    {},
    {"a": "acc-1", "n": 3, "x": 1.5, "ok": True, "none": None},
    {"when": datetime(2026, 1, 2, tzinfo=UTC), "amount": Decimal("1.10"), "color": Color.RED},
    {"nested": {"a": [1, 2, {"b": "c"}]}},
    [1, "two"],
    None,
]


@pytest.mark.parametrize(
    ("url", "library_serializer"),
    [
        ("postgresql+asyncpg://u@h/db", True),
        ("postgresql+psycopg://u@h/db", True),
        ("sqlite+aiosqlite://", True),
        ("postgresql+asyncpg://u@h/db", False),
    ],
)
def test_json_column_processor_sends_what_the_processor_chain_sends(
    url: str, library_serializer: bool
) -> None:
    # JSONType short-cuts flat dicts (the usual payload) past its processor chain: the text
    # sent must be the chain's, on every driver, and for an engine with a serializer of its
    # own the chain runs unchanged.
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.types import TypeDecorator

    from cqrs_ddd_persistence_sqlalchemy import create_engine
    from cqrs_ddd_persistence_sqlalchemy.types import JSONType

    engine = (
        create_engine(url) if library_serializer else create_async_engine(url, json_serializer=str)
    )
    dialect = engine.sync_engine.dialect
    column_type = JSONType().dialect_impl(dialect)
    process = column_type.bind_processor(dialect)
    chain = TypeDecorator.bind_processor(column_type, dialect)
    assert process is not None and chain is not None

    def sent(value: object) -> object:
        # psycopg's dialect wraps the value (``Jsonb``, compared by identity): its content.
        out = process(value)
        return (type(out), getattr(out, "obj", out))

    def chained(value: object) -> object:
        out = chain(value)
        return (type(out), getattr(out, "obj", out))

    for value in _JSON_VALUES:
        assert sent(value) == chained(value), value

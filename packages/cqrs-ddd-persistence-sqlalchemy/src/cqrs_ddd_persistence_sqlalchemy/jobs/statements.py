"""The job repository's kept statements: the fenced writes of a running job.

Each is built once with bound parameters (SQLAlchemy's compiled cache hits, and outside a unit of
work the execution seam may prepare it once: ``DurableQueue.run`` keeps it per dialect). Only
``build(dialect)`` differs by dialect, through the dialect interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Float,
    Integer,
    String,
    Text,
    Update,
    bindparam,
    func,
    literal_column,
    null,
    update,
)

from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport
from cqrs_ddd_persistence_sqlalchemy.queue import DONE
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps
from cqrs_ddd_persistence_sqlalchemy.tables.jobs import jobs_table
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime

__all__ = [
    "COMPLETE",
    "COMPLETE_MANY",
    "build_complete",
    "build_complete_many",
    "encode_result",
    "fenced_builder",
]

_t = jobs_table.c
_NOW = bindparam("j_now", type_=UTCDateTime())
_UNTIL = bindparam("j_until", type_=UTCDateTime())

#: The names the statements are kept under in the job queue.
COMPLETE = ("job", "complete")
COMPLETE_MANY = ("job", "complete_many")


def _fenced_update(**values: Any) -> Update:
    """A write only the lease holder may make (``j_id`` + ``j_token``); returns what the
    worker needs to know afterwards."""
    return (
        update(jobs_table)
        .where(
            _t.id == bindparam("j_id", type_=_t.id.type),
            _t.lease_token == bindparam("j_token", type_=String()),
        )
        .values(updated_at=_NOW, **values)
        .returning(_t.cancel_requested, _t.attempts)
    )


# Constants are written into the SQL, not sent as parameters with every settle.
_SETTLED = {"lease_token": null(), "locked_until": null()}
_DONE_SQL = literal_column(f"'{DONE}'", String())
_FENCED: dict[str, Update] = {
    "heartbeat": _fenced_update(locked_until=_UNTIL),
    "progress": _fenced_update(
        progress=bindparam("j_progress", type_=Float()), locked_until=_UNTIL
    ),
    "progress_message": _fenced_update(
        progress=bindparam("j_progress", type_=Float()),
        progress_message=bindparam("j_message", type_=Text()),
        locked_until=_UNTIL,
    ),
    "cancelled": _fenced_update(status=_DONE_SQL, cancelled_at=_NOW, finished_at=_NOW, **_SETTLED),
}


def build_complete(dialect: DialectSupport) -> Update:
    """Complete one job with its result (``j_result``: JSON text)."""
    # The result arrives as JSON text made by the library's codec (one encoding, whatever the
    # engine's JSON codec): PostgreSQL parses it into the jsonb column, SQLite stores it.
    text_ = bindparam("j_result", type_=Text())
    return _fenced_update(
        status=_DONE_SQL,
        result=dialect.json_from_text(text_),
        progress=literal_column("1.0", Float()),
        attempts=_t.attempts + literal_column("1", Integer()),
        finished_at=_NOW,
        **_SETTLED,
    )


def build_complete_many(dialect: DialectSupport) -> Update:
    """Complete many jobs in one statement, each fenced by its own token (a database with
    array parameters: ``dialect.supports_arrays``)."""
    batch = (
        func.unnest(
            bindparam("j_ids", type_=ARRAY(BigInteger())),
            bindparam("j_tokens", type_=ARRAY(String())),
            bindparam("j_results", type_=ARRAY(Text())),
        )
        .table_valued("id", "token", "result", name="batch")
        .render_derived()
    )
    return (
        update(jobs_table)
        .where(_t.id == batch.c.id, _t.lease_token == batch.c.token)
        .values(
            status=_DONE_SQL,
            result=dialect.json_from_text(batch.c.result),
            progress=literal_column("1.0", Float()),
            attempts=_t.attempts + literal_column("1", Integer()),
            finished_at=_NOW,
            updated_at=_NOW,
            **_SETTLED,
        )
        .returning(_t.id)
    )


def fenced_builder(name: str) -> Callable[[DialectSupport], Update]:
    """The builder of the fenced write ``name`` (``complete``, ``heartbeat``, ``progress``,
    ``progress_message``, ``cancelled``)."""
    if name == "complete":
        return build_complete
    stmt = _FENCED[name]
    return lambda _dialect: stmt


#: The stored form of a ``None`` result (most jobs return nothing): encoded once.
_NO_RESULT = json_dumps({"value": None})


def encode_result(result: Any) -> str:
    """A job's result as the JSON text :func:`build_complete` stores."""
    if result is None:
        return _NO_RESULT
    # Wrapped, so that a result that is itself a JSON string stays one.
    return json_dumps({"value": result})

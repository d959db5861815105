"""PostgreSQL ``xid8`` (transaction ids that never wrap) and ``pg_current_xact_id()``.

The event log's ``txid`` column: on PostgreSQL the appending transaction's id, the key of the
commit-safe global cursor; elsewhere a plain ``BIGINT`` that is always 0 (serialised writers).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import UserDefinedType

__all__ = ["Xid8", "current_xact_id"]


class Xid8(UserDefinedType[int]):
    """PostgreSQL ``xid8`` (64-bit, never wraps); a plain ``BIGINT`` elsewhere.

    A bound value travels as text and is cast on the server: drivers type a Python ``int`` as
    ``int2``/``int4``/``int8`` (psycopg) and PostgreSQL has neither a cast nor a comparison
    operator from those to ``xid8``; every type converts from text.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"

    def bind_processor(self, dialect: Any) -> Any:
        return _to_text

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(cast(bindvalue, Text()), self)


def _to_text(value: Any) -> Any:
    return None if value is None else str(value)


@compiles(Xid8, "sqlite")
def _xid8_sqlite(element: Xid8, compiler: Any, **kw: Any) -> str:
    return "BIGINT"


class current_xact_id(FunctionElement[int]):
    """``pg_current_xact_id()`` on PostgreSQL, ``0`` elsewhere (serialised writers)."""

    type = Xid8()
    inherit_cache = True


@compiles(current_xact_id)
def _current_xact_id_default(element: current_xact_id, compiler: Any, **kw: Any) -> str:
    return "0"


@compiles(current_xact_id, "postgresql")
def _current_xact_id_pg(element: current_xact_id, compiler: Any, **kw: Any) -> str:
    return "pg_current_xact_id()"

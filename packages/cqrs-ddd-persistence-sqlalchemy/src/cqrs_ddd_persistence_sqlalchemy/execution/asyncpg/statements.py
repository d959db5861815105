"""Statements compiled once for asyncpg: SQL text, parameter order, bind processors.

SQLAlchemy's asyncpg execution path — execution context, greenlet hops, DBAPI cursor
adaptation, result construction — costs about 100-200 µs of client CPU per statement, as much
as a whole raw-asyncpg transaction. A statement the library keeps alive (module constants,
per-store statements) is compiled once per dialect instance and its SQL sent with
``asyncpg.Connection.fetch``.

The values asyncpg receives are the ones SQLAlchemy would have sent: every parameter goes
through its type's own bind processor (``UTCDateTime``'s zone check, ``JSONType``'s codec),
taken from the dialect. A statement qualifies only when no parameter is rendered per execution
(expanding ``IN``: use ``= ANY(array)``) and no result column needs SQLAlchemy-side conversion.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from cqrs_ddd_persistence_sqlalchemy.execution.protocol import is_kept

__all__ = ["DriverStatement", "compiled_for", "driver_form", "driver_many"]

_Processor = Callable[[Any], Any] | None


def _needs_result_processing(type_: Any, dialect: Dialect) -> bool:
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, sqltypes.Float):
        return bool(impl.asdecimal)  # float8 comes back as float
    if isinstance(impl, sqltypes.Numeric):
        return not impl.asdecimal  # numeric comes back as Decimal
    try:
        return impl.result_processor(dialect, None) is not None
    except Exception:  # a processor that needs the column's type code: let SQLAlchemy do it
        return True


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement compiled once for asyncpg: SQL, parameter order, their bind processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[_Processor, ...]
    #: Values of the statement's own literal binds (``coalesce(x, 0)``, ``LIMIT 1``...).
    defaults: dict[str, Any]
    #: ``names`` and ``processors`` side by side, as ``args`` walks them.
    pairs: tuple[tuple[str, _Processor], ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", tuple(zip(self.names, self.processors, strict=True)))

    @classmethod
    def compile(cls, stmt: ClauseElement, dialect: Dialect) -> DriverStatement | None:
        """The driver form of ``stmt``, or ``None`` when it must go through SQLAlchemy."""
        compiled: Any = stmt.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            return None  # expanding IN and literal binds are rendered per execution
        if compiled.insert_prefetch or compiled.update_prefetch:
            # Column defaults computed client-side at each execution (an INSERT leaving out a
            # column with a Python-side default): only SQLAlchemy's execution fills them in.
            return None
        for col in getattr(stmt, "exported_columns", ()):
            if _needs_result_processing(col.type, dialect):
                return None  # SQLAlchemy would convert this result column
        names = tuple(compiled.positiontup or ())
        defaults: dict[str, Any] = {}
        processors: list[_Processor] = []
        for name in names:
            bind = compiled.binds[name]
            if not bind.required:
                defaults[name] = bind.effective_value
            processors.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        return cls(compiled.string, names, tuple(processors), defaults)

    def args(self, params: Mapping[str, Any] | None) -> list[Any]:
        """Positional arguments from named ones, as SQLAlchemy would have processed them."""
        if self.defaults:
            params = {**self.defaults, **params} if params else self.defaults
        elif params is None:
            params = {}
        return [
            value if process is None or value is None else process(value)
            for name, process in self.pairs
            for value in (params[name],)
        ]


_Forms = dict[int, tuple[weakref.ref[ClauseElement], DriverStatement | None]]

# id(dialect instance) -> id(statement) -> (a weak reference to it, its driver form or None).
# Keyed by the dialect *instance*: two engines with different dialect options (a JSON
# serializer, say) have different bind processors. A dialect's entry goes when it is collected
# (before its id can be reused), a statement's when it is. By id rather than in a
# ``WeakKeyDictionary``, whose lookup makes a weak reference per call: this runs per statement.
_CACHE: dict[int, _Forms] = {}


def _forms_of(dialect: Dialect) -> _Forms:
    key = id(dialect)
    forms: _Forms = {}
    _CACHE[key] = forms
    weakref.finalize(dialect, _CACHE.pop, key, None)
    return forms


def compiled_for(stmt: ClauseElement, dialect: Dialect) -> DriverStatement | None:
    """The driver form of ``stmt`` for ``dialect``, or ``None`` when it goes through
    SQLAlchemy: it does not qualify, or it is not a statement marked
    :func:`~...protocol.kept` (one built per call would only fill the cache)."""
    per_dialect = _CACHE.get(id(dialect))
    if per_dialect is None:
        per_dialect = _forms_of(dialect)
    key = id(stmt)
    hit = per_dialect.get(key)
    if hit is not None and hit[0]() is stmt:
        return hit[1]
    if not is_kept(stmt):
        return None
    form = DriverStatement.compile(stmt, dialect)
    per_dialect[key] = (weakref.ref(stmt, lambda _ref: per_dialect.pop(key, None)), form)
    return form


def driver_form(stmt: Any, params: Any, dialect: Dialect) -> DriverStatement | None:
    """The driver form of ``stmt`` run with ``params``: only for one parameter set (or none);
    a list of them (``executemany``) goes through SQLAlchemy."""
    # ``type() is dict`` first: the usual case, and an ABC check costs several times more.
    if params is not None and type(params) is not dict and not isinstance(params, Mapping):
        return None
    return compiled_for(stmt, dialect)


def driver_many(stmt: Any, params: Any, dialect: Dialect) -> DriverStatement | None:
    """The driver form of ``stmt`` run once per parameter set of ``params`` (an
    ``executemany`` with at least two sets; no rows read back), or ``None``."""
    if params is None or type(params) is dict:
        return None  # one parameter set or none (most statements), without the ABC checks
    if type(params) is list:  # the usual executemany, without the ABC checks
        if len(params) < 2 or not all(type(p) is dict or isinstance(p, Mapping) for p in params):
            return None
    elif (
        isinstance(params, Mapping)
        or not isinstance(params, Sequence)
        or len(params) < 2
        or not all(isinstance(p, Mapping) for p in params)
    ):
        return None
    return compiled_for(stmt, dialect)

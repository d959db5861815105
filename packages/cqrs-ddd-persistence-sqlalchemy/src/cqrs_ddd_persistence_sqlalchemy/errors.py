"""The one place where driver errors become the library's error tree.

Translation is by SQLSTATE (PostgreSQL / asyncpg) or SQLite's extended result code, and by
constraint name, never by matching message text. (SQLite reports neither a constraint name nor
a code for a missing table, so for it alone the structured tail of the message — the
``table.column`` list after ``constraint failed:`` — is resolved against the known metadata.)

Stores call :func:`translate` (or use :func:`translating`) around database work; a store that
knows what a constraint means passes ``constraints={"uq_events_stream_id_version": factory}``.
Where an exception may come from application code as well (a unit of work's block), only
:func:`database_error` is used: it translates what SQLAlchemy or a driver raised and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Literal

from sqlalchemy import MetaData, UniqueConstraint
from sqlalchemy import exc as sa_exc

from cqrs_ddd_core.errors import (
    CheckViolationError,
    ConnectionLostError,
    CQRSDDDError,
    DataError,
    DeadlockError,
    ForeignKeyViolationError,
    IntegrityViolationError,
    LockTimeoutError,
    MissingSchemaError,
    NotNullViolationError,
    PersistenceError,
    SerializationFailureError,
    StatementTimeoutError,
    UniqueViolationError,
)

__all__ = [
    "ConstraintErrors",
    "database_error",
    "is_retryable",
    "register_metadata_for_sqlite_constraints",
    "translate",
    "translating",
]

#: constraint name -> factory of the error to raise instead of the generic violation.
ConstraintErrors = Mapping[str, Callable[[PersistenceError], CQRSDDDError]]

_EXACT: dict[str, type[PersistenceError]] = {
    "40001": SerializationFailureError,
    "40P01": DeadlockError,
    "55P03": LockTimeoutError,
    "57014": StatementTimeoutError,
    "57P01": ConnectionLostError,  # admin shutdown / pg_terminate_backend
    "57P02": ConnectionLostError,  # crash shutdown
    "57P03": ConnectionLostError,  # cannot connect now (starting up)
    "23505": UniqueViolationError,
    "23503": ForeignKeyViolationError,
    "23502": NotNullViolationError,
    "23514": CheckViolationError,
    "42P01": MissingSchemaError,  # undefined table
    "42703": MissingSchemaError,  # undefined column
    "3F000": MissingSchemaError,  # invalid schema name
    "42704": MissingSchemaError,  # undefined object (type, extension)
}
_CLASS: dict[str, type[PersistenceError]] = {
    "08": ConnectionLostError,
    "22": DataError,
    "23": IntegrityViolationError,
    "40": SerializationFailureError,
    "53": ConnectionLostError,  # insufficient resources (too many connections)
}
_SQLITE: dict[str, type[PersistenceError]] = {
    "SQLITE_CONSTRAINT_UNIQUE": UniqueViolationError,
    "SQLITE_CONSTRAINT_PRIMARYKEY": UniqueViolationError,
    "SQLITE_CONSTRAINT_FOREIGNKEY": ForeignKeyViolationError,
    "SQLITE_CONSTRAINT_NOTNULL": NotNullViolationError,
    "SQLITE_CONSTRAINT_CHECK": CheckViolationError,
    "SQLITE_BUSY": LockTimeoutError,
    "SQLITE_BUSY_SNAPSHOT": SerializationFailureError,
    "SQLITE_LOCKED": LockTimeoutError,
    "SQLITE_MISMATCH": DataError,
    "SQLITE_TOOBIG": DataError,
}

# SQLite: (table, (columns...)) -> constraint name, from every registered MetaData.
_SQLITE_UNIQUES: dict[tuple[str, tuple[str, ...]], str] = {}


def register_metadata_for_sqlite_constraints(md: MetaData) -> None:
    """Make unique constraints/indexes of ``md`` nameable in SQLite error translation."""
    for table in md.tables.values():
        for cons in table.constraints:
            if isinstance(cons, UniqueConstraint) and isinstance(cons.name, str):
                cols = tuple(sorted(c.name for c in cons.columns))
                _SQLITE_UNIQUES[(table.name, cols)] = cons.name
        for index in table.indexes:
            if index.unique and isinstance(index.name, str):
                cols = tuple(sorted(c.name for c in index.columns))
                _SQLITE_UNIQUES[(table.name, cols)] = index.name


def _driver_error(exc: BaseException) -> BaseException:
    """The innermost driver exception (asyncpg / sqlite3) behind SQLAlchemy's wrappers."""
    err: BaseException = exc
    if isinstance(err, sa_exc.StatementError) and err.orig is not None:
        err = err.orig
    # SQLAlchemy's asyncpg adapter keeps the asyncpg exception as __cause__.
    cause = err.__cause__
    if cause is not None and getattr(cause, "sqlstate", None):
        return cause
    return err


def _sqlite_constraint(message: str) -> str | None:
    # "UNIQUE constraint failed: events.stream_id, events.version"
    _, sep, tail = message.partition("constraint failed: ")
    if not sep:
        return None
    pairs = [p.strip().split(".", 1) for p in tail.split(",")]
    if not pairs or any(len(p) != 2 for p in pairs):
        return None
    table = pairs[0][0]
    cols = tuple(sorted(p[1] for p in pairs))
    return _SQLITE_UNIQUES.get((table, cols), f"{table}({', '.join(cols)})")


def translate(
    exc: BaseException, *, constraints: ConstraintErrors | None = None
) -> CQRSDDDError | None:
    """The library error for ``exc``, or ``None`` if ``exc`` is not a database error."""
    if isinstance(exc, CQRSDDDError):
        return exc
    driver = _driver_error(exc)
    if isinstance(driver, CQRSDDDError):
        # A library error raised inside a bind/result processor (the JSON codec, UTCDateTime),
        # wrapped by SQLAlchemy in a StatementError.
        return driver
    sqlstate = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    message = str(driver).strip() or type(driver).__name__
    error: PersistenceError | None = None
    if isinstance(sqlstate, str) and sqlstate:
        cls = _EXACT.get(sqlstate) or _CLASS.get(sqlstate[:2]) or PersistenceError
        # asyncpg names the constraint on the exception, psycopg in its diagnostics.
        constraint = getattr(driver, "constraint_name", None) or getattr(
            getattr(driver, "diag", None), "constraint_name", None
        )
        error = cls(message, sqlstate=sqlstate, constraint=constraint)
    elif hasattr(driver, "sqlite_errorname"):
        name = str(driver.sqlite_errorname)
        cls = _SQLITE.get(name, PersistenceError)
        constraint = None
        if name.startswith("SQLITE_CONSTRAINT"):
            constraint = _sqlite_constraint(message)
        elif name == "SQLITE_ERROR" and message.startswith(
            ("no such table", "no such column", "no such function", "no such module")
        ):
            # SQLite has no finer code; a missing function means an extension
            # (SpatiaLite, JSON1, FTS5) is not loaded.
            cls = MissingSchemaError
        error = cls(message, sqlstate=name, constraint=constraint)
    elif isinstance(exc, sa_exc.PendingRollbackError) and exc.code == "8s2b":
        # A Connection whose transaction died with its connection (disconnect) was used again
        # before a rollback: the connection was lost. (Session-level "7s2a" is not this.)
        error = ConnectionLostError(f"the connection was lost in the transaction: {message}")
    elif isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        error = ConnectionLostError(message)
    elif isinstance(exc, sa_exc.OperationalError):
        # No SQLSTATE: the server never answered (psycopg's "connection failed: ... refused").
        error = ConnectionLostError(f"cannot reach the database: {message}")
    elif isinstance(driver, ConnectionError | OSError | asyncio.TimeoutError):
        error = ConnectionLostError(f"cannot reach the database: {message}")
    elif type(driver).__name__ in {
        "ConnectionDoesNotExistError",
        "InterfaceError",
        # asyncpg: "cannot switch to state N; another operation (2) is in progress" — the
        # connection was still consuming the FATAL of a terminated backend
        "InternalClientError",
    }:
        error = ConnectionLostError(message)
    elif isinstance(driver, UnicodeError):
        # Text the driver cannot encode (lone surrogates); aiosqlite raises it unwrapped.
        error = DataError(f"invalid text: {driver}")
    elif isinstance(exc, sa_exc.StatementError) and isinstance(
        driver, ValueError | TypeError | OverflowError
    ):
        # A bind processor refused a value (naive datetime, non-JSON payload...).
        error = DataError(f"invalid value: {driver}")
    elif isinstance(exc, sa_exc.DBAPIError):
        error = (
            DataError(message)
            if type(driver).__name__ in {"DataError", "DataTypeError"}
            else PersistenceError(message)
        )
    if error is None:
        return None
    if constraints and error.constraint is not None and error.constraint in constraints:
        return constraints[error.constraint](error)
    return error


class translating:
    """Re-raise database errors raised in the block as library errors.

    A class rather than a ``@contextmanager`` generator: every statement of a store passes
    through one, and a generator's setup costs four times as much as these two methods."""

    __slots__ = ("_constraints",)

    def __init__(self, *, constraints: ConstraintErrors | None = None) -> None:
        self._constraints = constraints

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False
        error = self._error(exc)
        if error is None:
            return False
        raise error from exc

    def _error(self, exc: Exception) -> CQRSDDDError | None:
        """The library error to raise instead of ``exc`` (``None``: ``exc`` propagates)."""
        constraints = self._constraints
        if isinstance(exc, CQRSDDDError):
            # Already translated (at the execution seam): give a known constraint its meaning.
            if constraints and isinstance(exc, PersistenceError):
                constraint = exc.constraint
                if constraint is not None and constraint in constraints:
                    return constraints[constraint](exc)
            return None
        return translate(exc, constraints=constraints)


# Where database exceptions come from: SQLAlchemy (its own, and its drivers' adapters) and the
# drivers themselves, whose exceptions may reach the caller unwrapped.
_DATABASE_PACKAGES = frozenset(
    {"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg", "psycopg2"}
)


def _package(module: object) -> str:
    return str(module).partition(".")[0]


def _raised_by_database(exc: BaseException) -> bool:
    if _package(type(exc).__module__) in _DATABASE_PACKAGES:
        return True
    # A driver's connect failure is the socket's own OSError / TimeoutError (asyncpg raises
    # them unwrapped): it comes from the database when the driver's code raised it.
    tb = exc.__traceback__
    while tb is not None:
        if _package(tb.tb_frame.f_globals.get("__name__")) in _DATABASE_PACKAGES:
            return True
        tb = tb.tb_next
    return False


def database_error(exc: BaseException) -> CQRSDDDError | None:
    """The library error for an exception raised by SQLAlchemy or a database driver (its own
    exception class, or any exception raised from their code).

    ``None`` for every other exception, library errors included (nothing to translate). Unlike
    :func:`translate`, this is safe on exceptions raised by application code: an application's
    ``OSError``, ``TimeoutError`` or ``ValueError`` is not a database failure and stays as it is.
    """
    if isinstance(exc, CQRSDDDError) or not isinstance(exc, Exception):
        return None
    if not _raised_by_database(exc):
        return None
    return translate(exc)


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` (library or driver error) is worth retrying in a new transaction."""
    error = translate(exc)
    return bool(error is not None and error.retryable)

"""The one error tree of the cqrs-ddd libraries.

Every error a caller can see derives from :class:`CQRSDDDError`. Driver errors never leak: the
persistence package translates them at a single choke point (by SQLSTATE and constraint name) into
the classes below, keeping the driver exception as ``__cause__``.

Layout::

    CQRSDDDError
    ├── DomainError
    ├── ConfigurationError
    ├── NotFoundError
    ├── ConcurrencyError
    │   └── OptimisticConcurrencyError
    │       └── WrongExpectedVersionError
    ├── PersistenceError
    │   ├── RetryableError
    │   │   ├── SerializationFailureError
    │   │   ├── DeadlockError
    │   │   ├── ConnectionLostError
    │   │   └── LockTimeoutError
    │   ├── StatementTimeoutError
    │   ├── IntegrityViolationError
    │   │   ├── UniqueViolationError
    │   │   ├── ForeignKeyViolationError
    │   │   ├── NotNullViolationError
    │   │   └── CheckViolationError
    │   ├── MissingSchemaError
    │   ├── DataError
    │   └── UnitOfWorkError
    ├── MappingError
    ├── SerializationError
    ├── EventTypeError
    │   ├── UnknownEventTypeError
    │   └── EventTypeConflictError
    ├── LeaseLostError
    └── SpecificationError
        ├── InvalidSpecificationError
        ├── OperatorNotFoundError
        ├── FieldNotFoundError
        └── InvalidValueError
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CQRSDDDError",
    "CheckViolationError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLostError",
    "DataError",
    "DeadlockError",
    "DomainError",
    "EventTypeConflictError",
    "EventTypeError",
    "FieldNotFoundError",
    "ForeignKeyViolationError",
    "IntegrityViolationError",
    "InvalidSpecificationError",
    "InvalidValueError",
    "LeaseLostError",
    "LockTimeoutError",
    "MappingError",
    "MissingSchemaError",
    "NotFoundError",
    "NotNullViolationError",
    "OperatorNotFoundError",
    "OptimisticConcurrencyError",
    "PersistenceError",
    "RetryableError",
    "SerializationError",
    "SerializationFailureError",
    "SpecificationError",
    "StatementTimeoutError",
    "UniqueViolationError",
    "UnitOfWorkError",
    "UnknownEventTypeError",
    "WrongExpectedVersionError",
    "suggest",
]


def suggest(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """Return the candidates closest to ``name`` (for "did you mean" messages)."""
    return difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.5)


class CQRSDDDError(Exception):
    """Base class of every error raised by the cqrs-ddd libraries."""

    #: Whether retrying the whole operation (a new transaction) may succeed.
    retryable: bool = False


class DomainError(CQRSDDDError):
    """A domain rule was violated (raised by user code through the domain model)."""


class ConfigurationError(CQRSDDDError):
    """The library was wired up wrongly (missing table, bad option, wrong argument type)."""


class NotFoundError(CQRSDDDError, LookupError):
    """An entity, stream, message or row that must exist does not."""

    def __init__(self, message: str, *, kind: str | None = None, key: Any = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.key = key


class ConcurrencyError(CQRSDDDError):
    """Two writers conflicted; the loser may reload and retry."""

    retryable = True


class OptimisticConcurrencyError(ConcurrencyError):
    """A stale version was written: somebody else changed (or deleted) the row first."""

    def __init__(
        self,
        message: str,
        *,
        entity_type: str | None = None,
        entity_id: Any = None,
        expected_version: Any = None,
        actual_version: Any = None,
    ) -> None:
        super().__init__(message)
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class WrongExpectedVersionError(OptimisticConcurrencyError):
    """An event-stream append found the stream at another version than expected."""

    def __init__(self, stream_id: str, expected: Any, actual: int | None) -> None:
        super().__init__(
            f"stream {stream_id!r}: expected version {expected!r}, actual version {actual!r}",
            entity_type="stream",
            entity_id=stream_id,
            expected_version=expected,
            actual_version=actual,
        )
        self.stream_id = stream_id


class PersistenceError(CQRSDDDError):
    """The database refused or failed an operation."""

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        constraint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.constraint = constraint


class RetryableError(PersistenceError):
    """A transient failure: the whole transaction may be retried."""

    retryable = True


class SerializationFailureError(RetryableError):
    """SQLSTATE 40001: the transaction could not be serialized."""


class DeadlockError(RetryableError):
    """SQLSTATE 40P01: the transaction was chosen as a deadlock victim."""


class ConnectionLostError(RetryableError):
    """The connection broke (server restart, terminated backend, network)."""


class LockTimeoutError(RetryableError):
    """SQLSTATE 55P03 / SQLite busy: a lock could not be obtained in time."""


class StatementTimeoutError(PersistenceError):
    """SQLSTATE 57014: the statement was cancelled (statement timeout or cancel request)."""


class IntegrityViolationError(PersistenceError):
    """A constraint was violated."""


class UniqueViolationError(IntegrityViolationError):
    """A unique constraint or primary key was violated."""


class ForeignKeyViolationError(IntegrityViolationError):
    """A foreign key was violated."""


class NotNullViolationError(IntegrityViolationError):
    """A NOT NULL column received NULL."""


class CheckViolationError(IntegrityViolationError):
    """A CHECK constraint was violated."""


class MissingSchemaError(PersistenceError):
    """A table, column or other schema object the library needs does not exist."""


class DataError(PersistenceError):
    """The database rejected a value (wrong type, out of range, invalid text)."""


class UnitOfWorkError(PersistenceError):
    """The unit of work was used wrongly (not entered, already closed, nested misuse)."""


class MappingError(CQRSDDDError):
    """An entity could not be mapped to or from its database model."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SerializationError(CQRSDDDError):
    """A value could not be serialized to JSON (or deserialized from it)."""


class EventTypeError(CQRSDDDError):
    """A problem with the event type registry."""


class UnknownEventTypeError(EventTypeError, LookupError):
    """A stored event names a type that is not registered."""

    def __init__(self, event_type: str, known: Iterable[str] = ()) -> None:
        hints = suggest(event_type, known)
        hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
        super().__init__(f"unknown event type {event_type!r}{hint}")
        self.event_type = event_type
        self.suggestions = hints


class EventTypeConflictError(EventTypeError):
    """Two different classes were registered under the same event type name."""


class LeaseLostError(CQRSDDDError):
    """A claimed row's lease expired and somebody else owns it now (fencing token mismatch)."""


class SpecificationError(CQRSDDDError, ValueError):
    """A specification or query option is malformed or refers to something that does not exist."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        where = f" at {path}" if path else ""
        super().__init__(f"{message}{where}")
        self.path = path


class InvalidSpecificationError(SpecificationError):
    """The specification's structure is wrong (missing keys, wrong node shape, too deep)."""


class OperatorNotFoundError(SpecificationError):
    """An operator name is neither an operator nor an alias of one."""

    def __init__(
        self, operator: str, known: Iterable[str] = (), *, path: str | None = None
    ) -> None:
        hints = suggest(str(operator).lower(), known)
        hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
        super().__init__(f"unknown operator {operator!r}{hint}", path=path)
        self.operator = operator
        self.suggestions = hints


class FieldNotFoundError(SpecificationError):
    """A field name does not exist on the queried model (or is not allowed)."""

    def __init__(
        self,
        field: str,
        known: Iterable[str] = (),
        *,
        model: str | None = None,
        path: str | None = None,
    ) -> None:
        hints = suggest(field, known)
        hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
        on = f" on {model}" if model else ""
        super().__init__(f"unknown field {field!r}{on}{hint}", path=path)
        self.field = field
        self.suggestions = hints


class InvalidValueError(SpecificationError):
    """A value has the wrong shape or type for its operator or field."""

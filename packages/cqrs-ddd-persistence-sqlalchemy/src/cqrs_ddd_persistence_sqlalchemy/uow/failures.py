"""How a unit of work tells database failures from application exceptions, and ends a
transaction whose connection is gone without raising."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.orm.exc import StaleDataError

from cqrs_ddd_core.errors import CQRSDDDError, OptimisticConcurrencyError, PersistenceError
from cqrs_ddd_persistence_sqlalchemy import errors
from cqrs_ddd_persistence_sqlalchemy.errors import database_error

__all__ = ["describe", "ending_quietly", "is_database_failure", "library_error", "translating"]

logger = logging.getLogger("cqrs_ddd_persistence_sqlalchemy.uow")


def library_error(exc: BaseException) -> CQRSDDDError | None:
    """The library error for a database exception; ``None`` for any other exception.

    ``StaleDataError`` is what the ORM raises when a ``version_id_col`` UPDATE/DELETE matched no
    row (models with ``VersionMixin`` used through the ORM directly): the same conflict the
    repository reports at ``add``.
    """
    if isinstance(exc, StaleDataError):
        return OptimisticConcurrencyError(f"stale write detected at flush: {exc}")
    return database_error(exc)


class translating(errors.translating):
    """Re-raise database exceptions as library errors; anything else passes untouched."""

    __slots__ = ()

    def _error(self, exc: Exception) -> CQRSDDDError | None:
        return library_error(exc)


def is_database_failure(exc: BaseException) -> bool:
    return isinstance(exc, PersistenceError) or library_error(exc) is not None


def describe(exc: BaseException) -> str:
    error = library_error(exc) or exc
    return f"{type(error).__name__}: {error}"


async def ending_quietly(
    what: str, end: Callable[[], Awaitable[None]], discard: Callable[[], Awaitable[None]]
) -> None:
    """``end()`` (a rollback, a close); if the database failed it — the connection is gone,
    and its transaction with it — ``discard()`` the connection instead (the pool never hands
    it out again) and raise nothing. Application exceptions propagate."""
    try:
        await end()
    except Exception as exc:
        if not is_database_failure(exc):
            raise
        logger.info("%s failed, the connection is discarded (%s)", what, describe(exc))
        try:
            await discard()
        except Exception as again:
            if not is_database_failure(again):
                raise
            logger.debug("discarding a lost connection failed (%s)", describe(again))

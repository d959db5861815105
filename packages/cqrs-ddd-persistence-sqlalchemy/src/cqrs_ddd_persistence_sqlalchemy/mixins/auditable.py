"""``AuditableModelMixin``: ``created_at``/``updated_at`` from the database clock, and optional
``created_by``/``updated_by`` from the current actor.

The actor comes from :func:`acting_as` (a context variable, per task) or, when none is set, from
the provider installed with :func:`set_actor_provider` (e.g. reading the request's user).

Example:
    >>> class OrderModel(AuditableModelMixin, Base): ...
    >>> with acting_as("alice"):
    ...     await repo.add(order)      # created_by = updated_by = "alice"
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from cqrs_ddd_persistence_sqlalchemy.mixins.managed import managed
from cqrs_ddd_persistence_sqlalchemy.types.clock import utcnow
from cqrs_ddd_persistence_sqlalchemy.types.datetime import UTCDateTime

__all__ = [
    "AuditableModelMixin",
    "acting_as",
    "current_actor",
    "set_actor_provider",
]

_actor: ContextVar[str | None] = ContextVar("cqrs_ddd_actor", default=None)
_provider: list[Callable[[], str | None]] = []


def set_actor_provider(provider: Callable[[], str | None] | None) -> None:
    """Install (or remove, with ``None``) the fallback source of the current actor."""
    _provider.clear()
    if provider is not None:
        _provider.append(provider)


@contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    """Attribute the writes made inside the block to ``actor``."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> str | None:
    """The actor writes are attributed to now (context first, then the provider)."""
    actor = _actor.get()
    if actor is None and _provider:
        actor = _provider[0]()
    return actor


def _actor_default(_context: Any = None) -> str | None:
    return current_actor()


class AuditableModelMixin:
    """Adds ``created_at``, ``updated_at`` (aware UTC, set by the database), ``created_by`` and
    ``updated_by`` (the current actor, may be NULL).

    The columns are managed: the repository never writes them from the entity, but an entity
    with fields of the same names gets them on load.
    """

    @declared_attr
    def created_at(cls) -> Mapped[dt.datetime]:
        return mapped_column(UTCDateTime(), nullable=False, server_default=utcnow(), info=managed())

    @declared_attr
    def updated_at(cls) -> Mapped[dt.datetime]:
        return mapped_column(
            UTCDateTime(),
            nullable=False,
            server_default=utcnow(),
            onupdate=utcnow(),
            info=managed(),
        )

    @declared_attr
    def created_by(cls) -> Mapped[str | None]:
        return mapped_column(String(255), nullable=True, default=_actor_default, info=managed())

    @declared_attr
    def updated_by(cls) -> Mapped[str | None]:
        return mapped_column(
            String(255),
            nullable=True,
            default=_actor_default,
            onupdate=_actor_default,
            info=managed(),
        )

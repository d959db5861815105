"""How the in-memory adapters join a unit of work (explicit, ambient, or none)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork, current_memory_uow
from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["run_in_uow"]


def resolve(uow: Any) -> InMemoryUnitOfWork | None:
    if uow is None:
        return current_memory_uow()
    if not isinstance(uow, InMemoryUnitOfWork):
        raise ConfigurationError(f"uow must be an InMemoryUnitOfWork, got {type(uow).__name__}")
    uow.ensure_active()
    return uow


def run_in_uow(
    uow: Any, apply: Callable[[], None], *, check: Callable[[], None] | None = None
) -> None:
    """Check now; apply on commit of the unit of work (or right away without one)."""
    if check is not None:
        check()
    joined = resolve(uow)
    if joined is None:
        apply()
    else:
        joined.stage(apply, check=check)

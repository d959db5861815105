"""Renamed public names: the old one keeps working for one release and says what replaces it."""

from __future__ import annotations

import warnings
from typing import Any

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["renamed", "renamed_argument"]


def renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that ``old`` is ``new`` now.

    ``stacklevel=3`` points at the caller of the method that calls this.

    Example::

        async def dead_jobs(self, limit: int = 100) -> list[J]:
            renamed("SQLAlchemyBackgroundJobRepository.dead_jobs", "dead_letters")
            return await self.dead_letters(limit)
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_argument(owner: str, old: str, new: str, old_value: Any, value: Any) -> Any:
    """The value of keyword ``new``, given either as ``new`` or as the deprecated ``old``.

    ``old`` alone warns and is used; both raise ``ConfigurationError`` (no silent preference).
    """
    if old_value is None:
        return value
    if value is not None:
        raise ConfigurationError(f"{owner}: pass {new}= only ({old}= is its deprecated name)")
    renamed(f"{owner}({old}=...)", f"{new}=", stacklevel=4)
    return old_value

"""Columns the database (or the library) manages: never written from an entity.

The mixins mark their version, audit and archive columns with :func:`managed`; the repository's
mapper reads such a column into the entity (when it has the field) and leaves it out of every
``INSERT`` / ``UPDATE`` built from one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MANAGED_INFO_KEY", "managed"]

#: ``Column.info`` key marking a column the database (or the library) manages.
MANAGED_INFO_KEY = "cqrs_ddd_managed"


def managed(info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``info=`` for a column that is never written from the entity (audit/archive/version).

    Example:
        >>> seen_at: Mapped[datetime] = mapped_column(server_default=func.now(), info=managed())
    """
    return {**(info or {}), MANAGED_INFO_KEY: True}

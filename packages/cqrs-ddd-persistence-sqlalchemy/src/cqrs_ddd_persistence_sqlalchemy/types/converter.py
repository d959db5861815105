"""``FieldConverter``: how one entity field's value becomes a column value, and back.

Defined at the foundation so that column helpers (``mixins.spatial``'s geometry converters) and
the repository's mapper share it without the mixins importing the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldConverter"]


@dataclass(frozen=True)
class FieldConverter:
    """Custom conversion of one field (or every field of one type) to and from the column.

    Example:
        >>> upper = FieldConverter(to_db=str.upper, from_db=str.lower)
        >>> upper.to_db("abc")
        'ABC'
    """

    to_db: Callable[[Any], Any]
    from_db: Callable[[Any], Any]

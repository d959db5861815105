"""What the durable queue hands out and reports: claims, outcomes, statistics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnClause, UnaryExpression

from cqrs_ddd_core.errors import LeaseLostError

__all__ = ["Claim", "Outcome", "QueueStats", "lost", "sort_claims", "sort_keys"]


@dataclass(frozen=True, slots=True)
class Claim:
    """One leased row. ``token`` is the fencing token every terminal write must present
    (``None`` only for an administrative settle of a row that is not leased)."""

    id: int
    token: str | None
    attempts: int
    locked_until: datetime
    values: Mapping[str, Any] = field(repr=False)

    def __getitem__(self, column: str) -> Any:
        return self.values[column]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a terminal write did, by row id."""

    done: tuple[int, ...] = ()
    retried: tuple[int, ...] = ()
    dead: tuple[int, ...] = ()
    released: tuple[int, ...] = ()
    extended: tuple[int, ...] = ()
    #: Rows whose lease was taken over by another worker: nothing was written for them.
    lost: tuple[int, ...] = ()

    def raise_if_lost(self) -> None:
        """Raise :class:`~cqrs_ddd_core.errors.LeaseLostError` if any row was lost."""
        if self.lost:
            error = LeaseLostError(f"lease lost for rows {sorted(self.lost)}")
            error.ids = self.lost  # type: ignore[attr-defined]
            raise error


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts by state and the lag of the oldest due row (``0.0`` when nothing is due)."""

    pending: int
    leased: int
    scheduled: int
    done: int
    dead: int
    oldest_due_at: datetime | None
    lag_seconds: float


def lost(claims: Sequence[Claim], written: Sequence[int]) -> tuple[int, ...]:
    """Ids of ``claims`` that were not ``written`` (their lease was taken over)."""
    ok = set(written)
    return tuple(sorted(c.id for c in claims if c.id not in ok))


def claim_id(claim: Claim) -> int:
    return claim.id


def sort_keys(
    table: Table, order_by: Sequence[ColumnElement[Any]]
) -> tuple[tuple[Callable[[Claim], Any], bool], ...]:
    """Sort keys (last first) for the leading plain columns of ``order_by``, up to ``id``.

    ``col`` / ``col.asc()`` / ``col.desc()`` of ``table`` qualify; the first other expression
    ends the list (claims are then ordered by the columns before it, then ``id``). A nullable
    column sorts NULLs as PostgreSQL does by default: last ascending, first descending.
    """
    keys: list[tuple[Callable[[Claim], Any], bool]] = []
    for item in order_by:
        element: Any = item
        descending = False
        if isinstance(item, UnaryExpression) and item.modifier in (
            operators.asc_op,
            operators.desc_op,
        ):
            descending = item.modifier is operators.desc_op
            element = item.element
        if not isinstance(element, ColumnClause):
            break
        name: str = element.name
        if table.c.get(name) is not element:
            break
        if name == "id":
            # Unique: later keys never matter. Claims are sorted by ``id`` ascending first.
            if descending:
                keys.append((claim_id, True))
            break
        nullable = bool(getattr(element, "nullable", True))
        keys.append((_column_key(name, nullable), descending))
    return tuple(reversed(keys))


def _column_key(name: str, nullable: bool) -> Callable[[Claim], Any]:
    if nullable:
        return lambda claim: (claim.values[name] is None, claim.values[name])
    return lambda claim: claim.values[name]


def sort_claims(claims: list[Claim], keys: tuple[tuple[Callable[[Claim], Any], bool], ...]) -> None:
    """Re-apply the claim order (``RETURNING`` has none): one stable sort per key, last first."""
    if len(claims) < 2:
        return
    claims.sort(key=claim_id)
    for key, descending in keys:
        claims.sort(key=key, reverse=descending)

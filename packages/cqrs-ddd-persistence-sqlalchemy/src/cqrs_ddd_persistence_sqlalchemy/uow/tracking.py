"""What a unit of work remembers of its current transaction: the aggregates saved in it (and
the versions they get at commit) and the hooks to run around its end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.ports.unit_of_work import AfterCommitHook

__all__ = ["BeforeCommitHook", "Tracking"]

#: ``async def hook(uow)``, run inside the transaction right before the commit.
BeforeCommitHook = Callable[[Any], Awaitable[None]]


class Tracking:
    """The tracking half of :class:`~.unit_of_work.SQLAlchemyUnitOfWork`: reset when the
    transaction commits or rolls back."""

    _seen: dict[int, AggregateRoot[Any]]
    _pending_versions: dict[int, tuple[AggregateRoot[Any], int]]
    _before_commit: list[BeforeCommitHook]
    _after_commit: list[AfterCommitHook]
    _after_rollback: list[Callable[[], None]]

    def _reset_tracking(self) -> None:
        self._seen = {}
        self._pending_versions = {}
        self._before_commit = []
        self._after_commit = []
        self._after_rollback = []

    def forget(self, aggregate: AggregateRoot[Any]) -> None:
        """Undo :meth:`register`: ``aggregate``'s save did not happen after all."""
        self._seen.pop(id(aggregate), None)
        self._pending_versions.pop(id(aggregate), None)

    def register(self, aggregate: AggregateRoot[Any], *, new_version: int | None = None) -> None:
        """Note that ``aggregate`` was saved; its version becomes ``new_version`` on commit."""
        self._seen[id(aggregate)] = aggregate
        if new_version is not None:
            self._pending_versions[id(aggregate)] = (aggregate, new_version)

    def pending_version(self, aggregate: AggregateRoot[Any]) -> int | None:
        """The version ``aggregate`` will have after commit, if it was saved in this UoW."""
        entry = self._pending_versions.get(id(aggregate))
        return entry[1] if entry else None

    @property
    def seen(self) -> list[AggregateRoot[Any]]:
        return list(self._seen.values())

    def before_commit(self, hook: BeforeCommitHook) -> None:
        """Run ``hook(uow)`` inside the transaction right before the next commit."""
        self._before_commit.append(hook)

    def after_commit(self, hook: AfterCommitHook) -> None:
        """Run ``hook()`` after the next successful commit (errors are logged, not raised)."""
        self._after_commit.append(hook)

    def after_rollback(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` when the current transaction is rolled back."""
        self._after_rollback.append(hook)

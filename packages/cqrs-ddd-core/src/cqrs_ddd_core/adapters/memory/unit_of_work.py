"""In-memory unit of work: staged writes applied on commit, dropped on rollback."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Self

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.errors import UnitOfWorkError
from cqrs_ddd_core.ports.unit_of_work import AfterCommitHook

__all__ = ["InMemoryUnitOfWork", "current_memory_uow"]

logger = logging.getLogger(__name__)

_current: ContextVar[InMemoryUnitOfWork | None] = ContextVar("cqrs_ddd_memory_uow", default=None)


def current_memory_uow() -> InMemoryUnitOfWork | None:
    return _current.get()


class InMemoryUnitOfWork:
    """A unit of work for the in-memory adapters (tests, prototypes).

    Adapters stage their writes with :meth:`stage`; staged writes are applied in order on
    :meth:`commit` and discarded on rollback, so the in-memory adapters have the same
    transactional behaviour as the SQL ones.
    """

    def __init__(self) -> None:
        self._active = False
        self._token: Token[InMemoryUnitOfWork | None] | None = None
        self._staged: list[Callable[[], None]] = []
        self._checks: list[Callable[[], None]] = []
        self._versions: dict[int, tuple[AggregateRoot[Any], int]] = {}
        self._after: list[AfterCommitHook] = []

    async def __aenter__(self) -> Self:
        self._active = True
        self._token = _current.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        await self.rollback()
        self._active = False

    @property
    def active(self) -> bool:
        return self._active

    def ensure_active(self) -> None:
        if not self._active:
            raise UnitOfWorkError("the unit of work is not active: use 'async with uow:'")

    def stage(self, apply: Callable[[], None], *, check: Callable[[], None] | None = None) -> None:
        """Stage ``apply`` for commit; ``check`` runs again at commit (raises on conflict)."""
        self.ensure_active()
        self._staged.append(apply)
        if check is not None:
            self._checks.append(check)

    def register(self, aggregate: AggregateRoot[Any], *, new_version: int | None = None) -> None:
        if new_version is not None:
            self._versions[id(aggregate)] = (aggregate, new_version)

    def after_commit(self, hook: AfterCommitHook) -> None:
        self._after.append(hook)

    async def commit(self) -> None:
        self.ensure_active()
        try:
            for check in self._checks:
                check()
        except BaseException:
            await self.rollback()
            raise
        for apply in self._staged:
            apply()
        for agg, version in self._versions.values():
            set_persisted_version(agg, version)
        hooks = self._after
        self._clear()
        for hook in hooks:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("after-commit hook %r failed", hook)

    async def rollback(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._staged = []
        self._checks = []
        self._versions = {}
        self._after = []

"""``uow.session`` that costs nothing until it is used.

The seed builds its stores per call on the unit of work's session
(``SQLAlchemyEventStore(uow.session)``): the store only needs to know which unit of work it
belongs to, and runs its statements through the execution seam. Building a real
``AsyncSession`` for that (with its ``Session``) cost about as much client CPU as the append
itself. The session handed out is therefore an instance of the factory's own session class
(``isinstance`` holds, every method is there) whose ``__init__`` runs at the first attribute
it does not have yet — i.e. at its first real use — with the factory's configuration and the
bind the unit of work gives it at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

__all__ = ["is_materialized", "lazy_session"]

_MAKE = "_cqrs_ddd_make_session"
_LAZY_CLASSES: dict[type[AsyncSession], type[AsyncSession]] = {}


def _lazy_class(cls: type[AsyncSession]) -> type[AsyncSession]:
    lazy = _LAZY_CLASSES.get(cls)
    if lazy is None:

        def __getattr__(self: AsyncSession, name: str) -> Any:
            make = self.__dict__.pop(_MAKE, None)
            if make is None or name.startswith("__"):
                raise AttributeError(name)
            make(self)
            return getattr(self, name)

        lazy = type(
            cls.__name__, (cls,), {"__getattr__": __getattr__, "__module__": cls.__module__}
        )
        _LAZY_CLASSES[cls] = lazy
    return lazy


def lazy_session(
    factory: async_sessionmaker[AsyncSession],
    bind: Callable[[], AsyncConnection | None],
    *,
    made: Callable[[AsyncSession], None] | None = None,
) -> AsyncSession:
    """A session of ``factory``'s class and configuration, made at its first use; ``bind()``
    then says which connection it joins (``None``: the factory's own bind), and ``made(session)``
    is called once it is made."""
    cls = factory.class_
    session = object.__new__(_lazy_class(cls))

    # Given the session rather than closing over it: a session holding a function that holds
    # the session is a reference cycle, which only the garbage collector would free.
    def make(session: AsyncSession) -> None:
        kw = dict(factory.kw)
        conn = bind()
        if conn is not None:
            kw["bind"] = conn
        cls.__init__(session, **kw)
        if made is not None:
            made(session)

    session.__dict__[_MAKE] = make
    return session


def is_materialized(session: AsyncSession) -> bool:
    """Whether ``session`` was used (a lazy one not yet used holds no session state)."""
    return _MAKE not in session.__dict__

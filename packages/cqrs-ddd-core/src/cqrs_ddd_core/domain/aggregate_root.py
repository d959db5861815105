"""Aggregate roots: consistency boundaries that record domain events."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import PrivateAttr

from cqrs_ddd_core.domain.entity import ID, Entity
from cqrs_ddd_core.domain.events import DomainEvent

__all__ = [
    "AggregateRoot",
    "get_persisted_version",
    "set_persisted_version",
]

E = TypeVar("E", bound=DomainEvent)


class AggregateRoot(Entity[ID], Generic[ID]):
    """Base class of aggregate roots (pydantic v2 model).

    Example::

        class Order(AggregateRoot):
            id: str
            customer_id: str
            total: float
            status: str = "pending"

            def ship(self) -> None:
                self.status = "shipped"
                self.add_event(OrderShipped(aggregate_id=self.id))

    ``version`` is read-only: it is the version last committed to the database (0 for a new
    aggregate) and only persistence changes it, after a successful commit.

    Event-sourced aggregates apply events with :meth:`apply`, which calls ``apply_<EventType>``
    (or ``when_<EventType>``) if the class defines it and counts the event in :attr:`version`;
    :meth:`record` applies a new event and keeps it pending for the next save.
    """

    _version: int = PrivateAttr(default=0)
    _events: list[DomainEvent] = PrivateAttr(default_factory=list)

    @property
    def version(self) -> int:
        """The persisted version (0 when never saved)."""
        # Read from pydantic's dict of private attributes: ``self._version`` misses the normal
        # lookup and goes through pydantic's ``__getattr__``, two exceptions raised and caught
        # per read, and repositories read it on every save.
        private = self.__pydantic_private__
        if private is None:  # pragma: no cover - only while pydantic builds the model
            return self._version
        version: int = private["_version"]
        return version

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _use_fresh_private_state(cls)

    @property
    def aggregate_type(self) -> str:
        return type(self).__name__

    # -- recording -------------------------------------------------------------------------
    def add_event(self, event: E) -> E:
        """Record ``event`` as pending, filling ``aggregate_id``/``aggregate_type`` if missing."""
        updates: dict[str, Any] = {}
        if event.aggregate_id is None:
            updates["aggregate_id"] = str(self.id)
        if event.aggregate_type is None:
            updates["aggregate_type"] = self.aggregate_type
        if updates:
            event = event.model_copy(update=updates)
        self._events.append(event)
        return event

    def record(self, event: E) -> E:
        """Record ``event`` and apply it to the state (event-sourced style)."""
        event = self.add_event(event)
        self._mutate(event)
        return event

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        """Events recorded since the last pull, without clearing them."""
        return tuple(self._events)

    def pull_domain_events(self) -> list[DomainEvent]:
        """Return the pending events and clear them."""
        events, self._events = self._events, []
        return events

    def collect_events(self) -> list[DomainEvent]:
        """Alias of :meth:`pull_domain_events`."""
        return self.pull_domain_events()

    # -- event sourcing --------------------------------------------------------------------
    def apply(self, event: Any) -> None:
        """Apply a historical event (replay) and count it in :attr:`version`.

        Accepts a ``DomainEvent`` or any object with ``event_type`` (e.g. a ``StoredEvent``).
        """
        self._mutate(event)
        self._version += 1

    def _mutate(self, event: Any) -> None:
        name = getattr(event, "event_type", type(event).__name__)
        handler = _find_handler(type(self), str(name))
        if handler is not None:
            handler(self, event)


def _fresh_private_state(self: AggregateRoot[Any], context: Any, /) -> None:
    """``model_post_init`` of aggregates: their private state, new."""
    if getattr(self, "__pydantic_private__", None) is None:
        object.__setattr__(self, "__pydantic_private__", {"_version": 0, "_events": []})


#: The private attributes ``_fresh_private_state`` sets up.
_OWN_PRIVATE = frozenset({"_version", "_events"})


def _is_pydantics_or_ours(post_init: Any) -> bool:
    """Whether ``post_init`` only sets up private attributes: ours, pydantic's initializer, or
    pydantic's wrappers around them (told apart by their code: ``functools.wraps`` copies the
    wrapped function's names)."""
    while post_init is not None:
        if post_init is _fresh_private_state:
            return True
        code = getattr(post_init, "__code__", None)
        if code is None or not code.co_filename.endswith("_model_construction.py"):
            return False  # a model_post_init of the application's: keep pydantic's handling
        post_init = getattr(post_init, "__wrapped__", None)
    return True


def _use_fresh_private_state(cls: type[AggregateRoot[Any]]) -> None:
    """Set up an aggregate's private state without pydantic's generic initializer.

    Every aggregate a repository loads runs it, and pydantic's (the defaults looked up,
    deep-copy checks, a wrapper per subclass level) costs twice as much as validating the
    fields. Only for a class whose private attributes are exactly ``AggregateRoot``'s
    ``_version`` and ``_events`` (not redeclared) and that has no ``model_post_init`` of its
    own: any other keeps pydantic's, which calls both. Pydantic calls ``model_post_init`` by
    name, so the class attribute is replaced.
    """
    private = cls.__private_attributes__
    if set(private) != _OWN_PRIVATE:
        return
    if cls is not AggregateRoot and any(
        private[name] is not AggregateRoot.__private_attributes__[name] for name in _OWN_PRIVATE
    ):
        return  # a subclass declared one of them again (another default, say)
    if _is_pydantics_or_ours(cls.__dict__.get("model_post_init", cls.model_post_init)):
        cls.model_post_init = _fresh_private_state  # type: ignore[method-assign,assignment]


_HANDLER_CACHE: dict[tuple[type, str], Callable[[Any, Any], None] | None] = {}
_NON_WORD = re.compile(r"\W")


def _find_handler(cls: type, event_type: str) -> Callable[[Any, Any], None] | None:
    key = (cls, event_type)
    if key not in _HANDLER_CACHE:
        suffix = _NON_WORD.sub("_", event_type)
        found = getattr(cls, f"apply_{suffix}", None) or getattr(cls, f"when_{suffix}", None)
        _HANDLER_CACHE[key] = found
    return _HANDLER_CACHE[key]


def set_persisted_version(aggregate: AggregateRoot[Any], version: int) -> None:
    """Persistence-only: record the version that is now committed for ``aggregate``."""
    private = aggregate.__pydantic_private__
    if private is None:  # pragma: no cover - only while pydantic builds the model
        aggregate._version = int(version)
    else:  # without pydantic's ``__setattr__`` (see ``AggregateRoot.version``)
        private["_version"] = int(version)


def get_persisted_version(aggregate: AggregateRoot[Any]) -> int:
    return aggregate.version


_use_fresh_private_state(AggregateRoot)

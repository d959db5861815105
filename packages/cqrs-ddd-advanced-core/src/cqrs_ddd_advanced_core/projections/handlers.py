"""Projections: handlers keyed by event type, and the context a handler writes through.

Example:
    >>> order_summaries = Projection("order_summaries", collections=["order_summaries"])
    >>> @order_summaries.on("OrderCreated")
    ... async def created(event: StoredEvent, ctx: ProjectionContext) -> None:
    ...     await ctx.upsert("order_summaries", event.aggregate_id,
    ...                      {"order_id": event.aggregate_id, "total": event.payload["total"]})

A runner (``cqrs_ddd_persistence_sqlalchemy.advanced.ProjectionRunner``) feeds the events of the
global log to :meth:`Projection.apply` inside one transaction per batch.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_core.ports.event_store import StoredEvent

from .ports import DocumentWrite, IProjectionStore
from .schema import ProjectionSchema, validate_identifier

__all__ = [
    "EventKey",
    "Handler",
    "HandlerRegistry",
    "Projection",
    "ProjectionContext",
    "WriteBuffer",
]

#: ``handler(event, ctx)``, sync or async.
Handler = Callable[[StoredEvent, "ProjectionContext"], Awaitable[None] | None]
#: An event type name or a ``DomainEvent`` subclass.
EventKey = str | type[DomainEvent]
H = TypeVar("H", bound=Handler)


def _type_name(key: EventKey) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, type) and issubclass(key, DomainEvent):
        return key.__event_type__
    raise ConfigurationError(f"handlers are keyed by event type name or class, not {key!r}")


class HandlerRegistry:
    """Event type name -> handlers, in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def register(self, key: EventKey, handler: Handler) -> None:
        if not callable(handler):
            raise ConfigurationError(f"handler for {key!r} is not callable")
        self._handlers.setdefault(_type_name(key), []).append(handler)

    def handlers_for(self, event_type: str) -> list[Handler]:
        return self._handlers.get(event_type, [])

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._handlers)


class WriteBuffer:
    """Document writes of one batch, flushed in order with few statements.

    A runner gives every handler of a batch the same buffer; the buffer is flushed before the
    checkpoint commits, so handlers always read their own writes: a read of a document that
    was read earlier in the batch is answered from that read plus the writes queued since
    (when the store can preview them, see ``preview_document``), any other read or delete
    flushes the collection first.
    """

    def __init__(self) -> None:
        self._pending: dict[str, list[DocumentWrite]] = {}
        # (collection, doc id) -> the document as read in this batch, and the writes since
        self._seen: dict[tuple[str, Any], tuple[dict[str, Any] | None, list[DocumentWrite]]] = {}
        #: Set when a flush raised: the error may belong to an earlier event's write.
        self.failed = False

    def add(self, collection: str, write: DocumentWrite) -> None:
        self._pending.setdefault(collection, []).append(write)
        if write.doc_id is None:  # id taken from the document: cannot tell which one changes
            self._seen = {k: v for k, v in self._seen.items() if k[0] != collection}
            return
        seen = self._seen.get((collection, write.doc_id))
        if seen is not None:
            seen[1].append(write)

    def __len__(self) -> int:
        return sum(len(w) for w in self._pending.values())

    def remember(self, collection: str, doc_id: Any, doc: dict[str, Any] | None) -> None:
        """Note ``doc`` as the stored state of ``doc_id`` (just read, nothing pending)."""
        self._seen[(collection, doc_id)] = (copy.deepcopy(doc), [])

    def preview(
        self, store: IProjectionStore, collection: str, doc_id: Any
    ) -> tuple[bool, dict[str, Any] | None]:
        """``(True, document)`` when the buffer knows the document without a read."""
        seen = self._seen.get((collection, doc_id))
        if seen is None:
            return False, None
        base, writes = seen
        if not writes:
            return True, copy.deepcopy(base)
        previewer = getattr(store, "preview_document", None)
        if previewer is None:
            return False, None
        result: tuple[bool, dict[str, Any] | None] = previewer(collection, doc_id, base, writes)
        return result

    async def flush(self, store: IProjectionStore, uow: Any, collection: str | None = None) -> int:
        """Write the pending writes (of ``collection``, or all) through ``store.upsert_many``."""
        names = list(self._pending) if collection is None else [collection]
        written = 0
        for name in names:
            writes = self._pending.pop(name, None)
            if writes:
                try:
                    written += await store.upsert_many(name, writes, uow=uow)
                except BaseException:
                    self.failed = True
                    raise
            # the stored documents changed: forget what was read before
            self._seen = {k: v for k, v in self._seen.items() if k[0] != name}
        return written


@dataclass(slots=True)
class ProjectionContext:
    """What a handler gets next to the event: the store, the transaction and the event.

    :meth:`upsert` stamps the write with the event's id and position, which makes re-applying
    an event to the same document a no-op (``idempotent=False`` leaves the event id out, for
    documents that accumulate). So an event writes a document once: a second ``upsert`` of the
    same event to the same document is refused like a redelivery; merge the changes into one
    write. With a :class:`WriteBuffer` (the runner's default) writes are
    batched: :meth:`upsert` returns ``True`` once the write is queued.
    """

    projection: str
    store: IProjectionStore
    event: StoredEvent
    uow: Any = None
    buffer: WriteBuffer | None = None

    async def upsert(
        self,
        collection: str,
        doc_id: Any,
        doc: Mapping[str, Any],
        *,
        version: int | None = None,
        idempotent: bool = True,
    ) -> bool:
        write = DocumentWrite(
            doc_id=doc_id,
            doc=doc,
            version=version,
            event_id=self.event.event_id if idempotent else None,
            position=self.event.position,
        )
        if self.buffer is not None:
            self.buffer.add(collection, write)
            return True
        return await self.store.upsert_many(collection, [write], uow=self.uow) == 1

    async def get(self, collection: str, doc_id: Any) -> dict[str, Any] | None:
        if self.buffer is None:
            return await self.store.get(collection, doc_id, uow=self.uow)
        known, doc = self.buffer.preview(self.store, collection, doc_id)
        if known:
            return doc
        await self.buffer.flush(self.store, self.uow, collection)
        doc = await self.store.get(collection, doc_id, uow=self.uow)
        self.buffer.remember(collection, doc_id, doc)
        return doc

    async def delete(self, collection: str, doc_id: Any) -> bool:
        if self.buffer is not None:
            await self.buffer.flush(self.store, self.uow, collection)
        return await self.store.delete(collection, doc_id, uow=self.uow)


class Projection:
    """A named read model: the collections it owns and its handlers.

    Args:
        name: the projection's name (its checkpoint key; its lease is ``projection:<name>``).
        collections: collections the projection writes; a rebuild truncates them.
        schemas: typed collections (``collection -> ProjectionSchema``); the others are
            document collections.
    """

    def __init__(
        self,
        name: str,
        *,
        collections: Iterable[str] = (),
        schemas: Mapping[str, ProjectionSchema] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ConfigurationError(f"invalid projection name {name!r}")
        self.name = name
        self.schemas: dict[str, ProjectionSchema] = dict(schemas or {})
        names = list(collections) + [c for c in self.schemas if c not in collections]
        self.collections: tuple[str, ...] = tuple(
            validate_identifier(c, what="collection name") for c in names
        )
        self.handlers = HandlerRegistry()

    def on(self, *keys: EventKey) -> Callable[[H], H]:
        """Decorator registering a handler for one or more event types."""
        if not keys:
            raise ConfigurationError("on() needs at least one event type")

        def decorate(handler: H) -> H:
            for key in keys:
                self.handlers.register(key, handler)
            return handler

        return decorate

    def handles(self, event_type: str) -> bool:
        return bool(self.handlers.handlers_for(event_type))

    async def apply(self, event: StoredEvent, ctx: ProjectionContext) -> None:
        """Run every handler registered for ``event.event_type`` (events without are skipped)."""
        for handler in self.handlers.handlers_for(event.event_type):
            result = handler(event, ctx)
            if inspect.isawaitable(result):
                await result

    def __repr__(self) -> str:
        return f"Projection({self.name!r}, collections={list(self.collections)!r})"

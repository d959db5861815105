"""Domain events: immutable facts recorded by aggregates."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DomainEvent", "new_id", "utc_now"]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


#: Random bytes drawn ahead, as 32-hex-digit strings (one ``os.urandom`` call per 128 ids).
_random_hex: list[str] = []
#: The hex digit at the variant position, with the RFC 4122 variant bits (10xx) set.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _draw_random_hex() -> None:
    digits = os.urandom(16 * 128).hex()
    _random_hex.extend([digits[i : i + 32] for i in range(0, len(digits), 32)])


# A forked child must never hand out its parent's ids: it starts with nothing drawn.
os.register_at_fork(after_in_child=_random_hex.clear)


def new_id() -> str:
    """A random (version 4) UUID in its canonical text form, e.g. for event and message ids.

    Same format and randomness (``os.urandom``) as ``str(uuid.uuid4())`` at under a third of
    the cost (no ``UUID`` object, the random bytes drawn 128 ids at a time): it runs once per
    event appended.
    """
    try:
        h = _random_hex.pop()  # atomic under the GIL: threads never share an id
    except IndexError:
        _draw_random_hex()
        h = _random_hex.pop()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class DomainEvent(BaseModel):
    """Base class of domain events (frozen pydantic model).

    Subclasses are registered in the default event type registry under their class name (or the
    ``event_type`` class keyword), so stored rows can be turned back into typed events::

        class OrderCreated(DomainEvent):
            customer_id: str

        class OrderShippedV2(DomainEvent, event_type="OrderShipped"):
            carrier: str

    ``version`` is the schema version of the event's payload (used by upcasters), not the
    position of the event in its stream.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Type name under which the class is registered (class name by default).
    __event_type__: ClassVar[str] = "DomainEvent"
    #: Current schema version of the class; new instances get it as ``version``.
    __schema_version__: ClassVar[int] = 1

    event_id: str = Field(default_factory=new_id)
    occurred_at: datetime = Field(default_factory=utc_now)
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    version: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    causation_id: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        event_type = kwargs.pop("event_type", None)
        schema_version = kwargs.pop("schema_version", None)
        super().__init_subclass__(**kwargs)
        cls.__event_type__ = event_type or cls.__name__
        if schema_version is not None:
            cls.__schema_version__ = int(schema_version)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Imported here: the registry imports this module.
        from cqrs_ddd_core.domain.event_registry import default_registry

        default_registry.register(cls)

    def model_post_init(self, context: Any, /) -> None:
        if self.version == 0:
            object.__setattr__(self, "version", type(self).__schema_version__)

    @field_validator("aggregate_id", "correlation_id", "causation_id", mode="before")
    @classmethod
    def _coerce_id(cls, value: Any) -> Any:
        # Aggregates may use int or UUID ids; events carry them as text.
        if value is None or isinstance(value, str):
            return value
        return str(value)

    @field_validator("occurred_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        # Already UTC (every value read back from the store): no conversion, no new object.
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    @property
    def event_type(self) -> str:
        """The registered type name of this event."""
        return type(self).__event_type__

    def payload(self) -> dict[str, Any]:
        """The event's own fields (everything but the envelope), JSON-ready python values."""
        return self.model_dump(mode="json", exclude=set(_ENVELOPE))


_ENVELOPE = frozenset(
    {
        "event_id",
        "occurred_at",
        "aggregate_id",
        "aggregate_type",
        "version",
        "metadata",
        "correlation_id",
        "causation_id",
    }
)

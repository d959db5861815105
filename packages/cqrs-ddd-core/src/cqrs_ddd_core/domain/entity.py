"""Entities and value objects."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["ID", "Entity", "ValueObject"]

ID = TypeVar("ID")


class Entity(BaseModel, Generic[ID]):
    """An object with identity: two entities are equal when their type and id are equal.

    Generic over the id type (``Entity[UUID]``) but usable bare with an ``id`` annotation of its
    own (``class Line(Entity): id: str``).
    """

    model_config = ConfigDict(validate_assignment=True, arbitrary_types_allowed=True)

    id: ID

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return type(self) is type(other) and self.id == other.id

    def __hash__(self) -> int:
        return hash((type(self), self.id))


class ValueObject(BaseModel):
    """An immutable value compared by its fields."""

    model_config = ConfigDict(frozen=True)

    def replace(self, **changes: Any) -> ValueObject:
        """A copy with ``changes`` applied (validated)."""
        return type(self).model_validate({**self.model_dump(), **changes})

"""A fluent builder for specifications.

``where`` / ``and_where`` add a condition joined by AND, ``or_where`` one joined by OR (AND binds
tighter, as in SQL). ``and_group`` / ``or_group`` / ``not_group`` open a parenthesised group joined
to what precedes it by AND, OR, or AND NOT; ``end_group`` closes it. ``build`` returns the
specification and resets the builder, so one builder can build several specifications.

Example:
    >>> spec = (
    ...     SpecificationBuilder()
    ...     .where("status", "eq", "active")
    ...     .and_where("total", "gt", 100)
    ...     .or_group().where("vip", "eq", True).and_where("total", "gt", 10).end_group()
    ...     .build()
    ... )
    >>> spec.to_dict()["op"]
    'or'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from cqrs_ddd_core.errors import InvalidSpecificationError

from .operators import Operator
from .specification import (
    AndSpecification,
    Condition,
    NotSpecification,
    OrSpecification,
    Specification,
)

__all__ = ["SpecificationBuilder"]

_Join = Literal["and", "or", "not"]


@dataclass
class _Frame:
    join: _Join
    terms: list[list[Specification]] = field(default_factory=lambda: [[]])

    def add(self, spec: Specification, join: Literal["and", "or"]) -> None:
        if join == "or" and self.terms[-1]:
            self.terms.append([])
        self.terms[-1].append(spec)

    def result(self) -> Specification | None:
        ors = [AndSpecification.of(*t) if len(t) > 1 else t[0] for t in self.terms if t]
        if not ors:
            return None
        return OrSpecification.of(*ors) if len(ors) > 1 else ors[0]


class SpecificationBuilder:
    """Build a :class:`Specification` step by step (see the module docstring)."""

    def __init__(self) -> None:
        self._stack: list[_Frame] = [_Frame("and")]

    def where(
        self, field: str | Specification, op: str | Operator | None = None, value: Any = None
    ) -> SpecificationBuilder:
        """Add a condition (or a ready specification) joined by AND."""
        return self._add(field, op, value, "and")

    def and_where(
        self, field: str | Specification, op: str | Operator | None = None, value: Any = None
    ) -> SpecificationBuilder:
        """Add a condition joined by AND."""
        return self._add(field, op, value, "and")

    def or_where(
        self, field: str | Specification, op: str | Operator | None = None, value: Any = None
    ) -> SpecificationBuilder:
        """Add a condition joined by OR."""
        return self._add(field, op, value, "or")

    def and_group(self) -> SpecificationBuilder:
        """Open a group joined by AND."""
        self._stack.append(_Frame("and"))
        return self

    def or_group(self) -> SpecificationBuilder:
        """Open a group joined by OR."""
        self._stack.append(_Frame("or"))
        return self

    def not_group(self) -> SpecificationBuilder:
        """Open a group that is negated and joined by AND."""
        self._stack.append(_Frame("not"))
        return self

    def end_group(self) -> SpecificationBuilder:
        """Close the innermost group."""
        if len(self._stack) == 1:
            raise InvalidSpecificationError("end_group() without an open group")
        frame = self._stack.pop()
        spec = frame.result()
        if spec is None:
            raise InvalidSpecificationError("empty group")
        if frame.join == "not":
            self._stack[-1].add(NotSpecification(spec), "and")
        else:
            self._stack[-1].add(spec, frame.join)
        return self

    def build(self) -> Specification:
        """Return the specification and reset the builder."""
        if len(self._stack) != 1:
            raise InvalidSpecificationError(f"{len(self._stack) - 1} group(s) left open")
        spec = self._stack[0].result()
        self._stack = [_Frame("and")]
        if spec is None:
            raise InvalidSpecificationError("the builder holds no condition")
        return spec

    def _add(
        self,
        field: str | Specification,
        op: str | Operator | None,
        value: Any,
        join: Literal["and", "or"],
    ) -> SpecificationBuilder:
        if isinstance(field, Specification):
            spec = field
        else:
            if op is None:
                raise InvalidSpecificationError(f"no operator given for field {field!r}")
            spec = Condition(field, op, value)
        self._stack[-1].add(spec, join)
        return self

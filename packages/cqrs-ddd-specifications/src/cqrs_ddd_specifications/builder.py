"""A fluent builder for specifications.

Conditions are added to the innermost open group:

- ``where`` joins a condition the way its group joins its members: by AND at the top level and
  in an ``and_group``, by OR in an ``or_group``;
- ``and_where`` / ``or_where`` join one condition to the previous member by AND / by OR, whatever
  the group (AND binds tighter than OR, as in SQL);
- ``and_group()`` / ``or_group()`` / ``not_group()`` ... ``end_group()`` is a parenthesised group
  whose members are joined by AND / by OR / negated. A not-group negates exactly one member (a
  condition or a nested group); zero or several members raise ``InvalidSpecificationError`` (wrap
  several in an ``and_group`` or ``or_group`` inside it). A closed group is one member of the
  enclosing group, joined like a ``where``;
- ``build`` returns the specification and resets the builder, so one builder can build several
  specifications. ``end_group`` without an open group, ``build`` with a group left open, or an
  empty group raise ``InvalidSpecificationError``.

Example:
    >>> spec = (
    ...     SpecificationBuilder()
    ...     .or_group().where("status", "eq", "active").where("status", "eq", "shipped").end_group()
    ...     .where("total", "gt", 100)
    ...     .build()
    ... )
    >>> spec.is_satisfied_by({"status": "shipped", "total": 150})
    True
    >>> [c["op"] for c in spec.to_dict()["conditions"]]
    ['or', '>']
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

_Kind = Literal["and", "or", "not"]
_Join = Literal["and", "or"]


@dataclass
class _Group:
    """An open group: its members as OR-ed runs of AND-ed specifications."""

    kind: _Kind
    runs: list[list[Specification]] = field(default_factory=lambda: [[]])
    size: int = 0

    @property
    def default_join(self) -> _Join:
        return "or" if self.kind == "or" else "and"

    def add(self, spec: Specification, join: _Join) -> None:
        if join == "or" and self.runs[-1]:
            self.runs.append([])
        self.runs[-1].append(spec)
        self.size += 1

    def result(self) -> Specification:
        if self.size == 0:
            raise InvalidSpecificationError(f"{self.kind}_group() closed without a condition")
        alternatives = [AndSpecification.of(*run) if len(run) > 1 else run[0] for run in self.runs]
        combined = OrSpecification.of(*alternatives) if len(alternatives) > 1 else alternatives[0]
        if self.kind != "not":
            return combined
        if self.size != 1:
            raise InvalidSpecificationError(
                f"not_group() negates exactly one condition, got {self.size}: "
                "wrap them in an and_group() or or_group() inside it"
            )
        return NotSpecification(combined)


class SpecificationBuilder:
    """Build a :class:`Specification` step by step (see the module docstring).

    Example:
        >>> spec = (
        ...     SpecificationBuilder()
        ...     .where("status", "eq", "active")
        ...     .not_group().where("customer", "eq", "blocked").end_group()
        ...     .build()
        ... )
        >>> spec.is_satisfied_by({"status": "active", "customer": "acme"})
        True
    """

    def __init__(self) -> None:
        self._stack: list[_Group] = [_Group("and")]

    def where(
        self, field: str | Specification, op: str | Operator | None = None, value: Any = None
    ) -> SpecificationBuilder:
        """Add a condition (or a ready specification) joined as its group joins members."""
        return self._add(field, op, value, self._stack[-1].default_join)

    def and_where(
        self, field: str | Specification, op: str | Operator | None = None, value: Any = None
    ) -> SpecificationBuilder:
        """Add a condition joined to the previous member by AND."""
        return self._add(field, op, value, "and")

    def or_where(
        self, field: str | Specification, op: str | Operator | None = None, value: Any = None
    ) -> SpecificationBuilder:
        """Add a condition joined to the previous member by OR."""
        return self._add(field, op, value, "or")

    def and_group(self) -> SpecificationBuilder:
        """Open a group whose members are joined by AND."""
        self._stack.append(_Group("and"))
        return self

    def or_group(self) -> SpecificationBuilder:
        """Open a group whose members are joined by OR."""
        self._stack.append(_Group("or"))
        return self

    def not_group(self) -> SpecificationBuilder:
        """Open a group negating its one member."""
        self._stack.append(_Group("not"))
        return self

    def end_group(self) -> SpecificationBuilder:
        """Close the innermost group; it becomes a member of the enclosing one.

        Raises:
            InvalidSpecificationError: no group is open, the group is empty, or a not-group
                has more than one member.
        """
        if len(self._stack) == 1:
            raise InvalidSpecificationError("end_group() without an open group")
        spec = self._stack.pop().result()
        enclosing = self._stack[-1]
        enclosing.add(spec, enclosing.default_join)
        return self

    def build(self) -> Specification:
        """Return the specification and reset the builder (also when it raises).

        Raises:
            InvalidSpecificationError: a group is still open, or the builder holds no condition.
        """
        stack, self._stack = self._stack, [_Group("and")]
        if len(stack) != 1:
            raise InvalidSpecificationError(
                f"build() with {len(stack) - 1} group(s) still open: close them with end_group()"
            )
        if stack[0].size == 0:
            raise InvalidSpecificationError("the builder holds no condition")
        return stack[0].result()

    def _add(
        self,
        field: str | Specification,
        op: str | Operator | None,
        value: Any,
        join: _Join,
    ) -> SpecificationBuilder:
        if isinstance(field, Specification):
            spec = field
        else:
            if op is None:
                raise InvalidSpecificationError(f"no operator given for field {field!r}")
            spec = Condition(field, op, value)
        self._stack[-1].add(spec, join)
        return self

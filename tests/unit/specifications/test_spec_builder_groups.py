"""``SpecificationBuilder`` groups: or_group ORs its members, and_group ANDs, not_group negates."""

from __future__ import annotations

import pytest

from cqrs_ddd_core.errors import InvalidSpecificationError
from cqrs_ddd_specifications import Condition, SpecificationBuilder

ACTIVE = Condition("status", "eq", "active")
SHIPPED = Condition("status", "eq", "shipped")
BIG = Condition("total", "gt", 100)


def test_spec_builder_or_group_joins_its_members_by_or() -> None:
    spec = (
        SpecificationBuilder()
        .or_group()
        .where("status", "eq", "active")
        .where("status", "eq", "shipped")
        .end_group()
        .where("total", "gt", 100)
        .build()
    )
    assert spec.to_dict() == {
        "op": "and",
        "conditions": [
            {"op": "or", "conditions": [ACTIVE.to_dict(), SHIPPED.to_dict()]},
            BIG.to_dict(),
        ],
    }
    assert spec.is_satisfied_by({"status": "shipped", "total": 150})
    assert not spec.is_satisfied_by({"status": "cancelled", "total": 150})


def test_spec_builder_and_group_inside_or_group() -> None:
    spec = (
        SpecificationBuilder()
        .or_group()
        .and_group()
        .where("status", "eq", "active")
        .where("total", "gt", 100)
        .end_group()
        .where("status", "eq", "shipped")
        .end_group()
        .build()
    )
    assert spec == (ACTIVE & BIG) | SHIPPED


def test_spec_builder_and_where_and_or_where_inside_groups() -> None:
    # and_where binds to the previous member (AND before OR), or_where starts an alternative
    in_or = (
        SpecificationBuilder()
        .or_group()
        .where("status", "eq", "active")
        .and_where("total", "gt", 100)
        .where("status", "eq", "shipped")
        .end_group()
        .build()
    )
    assert in_or == (ACTIVE & BIG) | SHIPPED
    in_and = (
        SpecificationBuilder()
        .and_group()
        .where("status", "eq", "active")
        .or_where("status", "eq", "shipped")
        .and_where("total", "gt", 100)
        .end_group()
        .build()
    )
    assert in_and == ACTIVE | (SHIPPED & BIG)


def test_spec_builder_not_group_negates_its_one_member() -> None:
    leaf = SpecificationBuilder().not_group().where("status", "eq", "active").end_group().build()
    assert leaf == ~ACTIVE
    group = (
        SpecificationBuilder()
        .where("total", "gt", 100)
        .not_group()
        .or_group()
        .where("status", "eq", "active")
        .where("status", "eq", "shipped")
        .end_group()
        .end_group()
        .build()
    )
    assert group == BIG & ~(ACTIVE | SHIPPED)
    assert group.is_satisfied_by({"status": "cancelled", "total": 150})
    assert not group.is_satisfied_by({"status": "active", "total": 150})
    # a not-group is one member of an or-group
    either = (
        SpecificationBuilder()
        .or_group()
        .where("total", "gt", 100)
        .not_group()
        .where("status", "eq", "active")
        .end_group()
        .end_group()
        .build()
    )
    assert either == BIG | ~ACTIVE


@pytest.mark.parametrize("members", [0, 2, 3])
def test_spec_builder_not_group_needs_exactly_one_member(members: int) -> None:
    builder = SpecificationBuilder().where("total", "gt", 100).not_group()
    for index in range(members):
        builder.where("n", "eq", index)
    with pytest.raises(InvalidSpecificationError, match="not_group"):
        builder.end_group()


@pytest.mark.parametrize("opener", ["and_group", "or_group"])
def test_spec_builder_empty_group_is_refused(opener: str) -> None:
    builder = getattr(SpecificationBuilder().where("total", "gt", 100), opener)()
    with pytest.raises(InvalidSpecificationError, match=opener):
        builder.end_group()


def test_spec_builder_unbalanced_groups_are_refused() -> None:
    with pytest.raises(InvalidSpecificationError, match="without an open group"):
        SpecificationBuilder().where("total", "gt", 100).end_group()
    builder = SpecificationBuilder().or_group().and_group().where("total", "gt", 100).end_group()
    with pytest.raises(InvalidSpecificationError, match="1 group"):
        builder.build()
    # build() resets the builder even when it refuses, so it is usable again at once
    assert builder.where("total", "gt", 100).build() == BIG
    with pytest.raises(InvalidSpecificationError, match="no condition"):
        SpecificationBuilder().build()


def test_spec_builder_documented_spellings_keep_working() -> None:
    builder = SpecificationBuilder()
    # seed README / package READMEs
    assert builder.where("status", "eq", "active").and_where("total", "gt", 100).build() == (
        ACTIVE & BIG
    )
    assert builder.where("status", "eq", "active").build() == ACTIVE
    # or_where joins one condition by OR at the top level; a ready specification is accepted
    assert builder.where("status", "eq", "active").or_where(SHIPPED).build() == ACTIVE | SHIPPED
    assert builder.where(ACTIVE | SHIPPED).where(BIG).build() == (ACTIVE | SHIPPED) & BIG

"""``ModelMapper`` without a database: plans, conversions, errors naming the field."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.entity import ValueObject
from cqrs_ddd_core.errors import MappingError
from cqrs_ddd_persistence_sqlalchemy.core import FieldConverter, ModelMapper, SQLAlchemyRepository
from cqrs_ddd_persistence_sqlalchemy.mixins import AuditableModelMixin, VersionMixin
from cqrs_ddd_persistence_sqlalchemy.types import JSONType, UTCDateTime, UUIDType
from cqrs_ddd_specifications import QueryOptions, SpecificationBuilder


class Base(DeclarativeBase):
    pass


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Dims(ValueObject):
    width: Decimal
    height: Decimal


class Widget(AggregateRoot[uuid.UUID]):
    id: uuid.UUID
    label: str
    color: Color
    made_at: dt.datetime
    ref: uuid.UUID
    price: Decimal
    dims: Dims
    tags: set[str] = set()
    cache: dict[str, Any] = {}


class WidgetModel(VersionMixin, AuditableModelMixin, Base):
    __tablename__ = "widgets"

    id: Mapped[uuid.UUID] = mapped_column(UUIDType(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    color: Mapped[str] = mapped_column(sa.String(10))
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ref: Mapped[str] = mapped_column(sa.String(36))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    dims: Mapped[Any] = mapped_column(JSONType())
    tags: Mapped[str] = mapped_column(sa.String(200))


TAGS = FieldConverter(lambda s: ",".join(sorted(s)), lambda t: set(filter(None, t.split(","))))


def _mapper() -> ModelMapper[Widget]:
    return ModelMapper(
        Widget,
        WidgetModel,
        field_map={"label": "name"},
        exclude={"cache"},
        converters={"tags": TAGS},
    )


def _widget() -> Widget:
    return Widget(
        id=uuid.uuid4(),
        label="w",
        color=Color.BLUE,
        made_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
        ref=uuid.uuid4(),
        price=Decimal("3.10"),
        dims=Dims(width=Decimal("1.5"), height=Decimal(2)),
        tags={"b", "a"},
        cache={"x": 1},
    )


def test_values_convert_for_the_column_types() -> None:
    widget = _widget()
    values = _mapper().to_values(widget)
    assert values == {
        "id": widget.id,
        "name": "w",
        "color": "blue",
        "made_at": widget.made_at,
        "ref": str(widget.ref),
        "price": Decimal("3.10"),
        "dims": {"width": "1.5", "height": "2"},
        "tags": "a,b",
    }  # no version/audit columns: the database and the repository own them


def test_orm_instance_round_trip() -> None:
    mapper = _mapper()
    widget = _widget()
    model = mapper.to_model(widget)
    assert isinstance(model, WidgetModel) and model.name == "w"
    model.version = 4
    again = mapper.to_entity(model)
    assert again.model_dump(exclude={"cache"}) == widget.model_dump(exclude={"cache"})
    assert again.cache == {} and again.version == 4 and again.color is Color.BLUE


def test_unknown_field_names_the_field_with_suggestions() -> None:
    with pytest.raises(MappingError) as info:
        ModelMapper(Widget, WidgetModel, exclude={"cache"}, converters={"tags": TAGS})
    assert info.value.field == "label" and "field_map" in str(info.value)


def test_bad_stored_value_names_the_field() -> None:
    mapper = _mapper()
    model = mapper.to_model(_widget())
    model.color = "green"
    with pytest.raises(MappingError) as info:
        mapper.to_entity(model)
    assert info.value.field == "color"


def test_type_converters_apply_by_annotation() -> None:
    upper = FieldConverter(
        lambda s: ",".join(sorted(s)).upper(), lambda t: set(t.lower().split(","))
    )
    mapper = ModelMapper(
        Widget,
        WidgetModel,
        field_map={"label": "name"},
        exclude={"cache"},
        type_converters={set: upper},
    )
    assert mapper.to_values(_widget())["tags"] == "A,B"


def test_search_compiles_not_and_paging_without_a_database() -> None:
    repo = SQLAlchemyRepository(Widget, WidgetModel, _mapper())
    spec = ~SpecificationBuilder().where("label", "eq", "x").build()
    result = repo.search(spec, QueryOptions(order_by=["-price", "made_at"], limit=5, offset=10))
    pg = str(result.statement.compile(dialect=postgresql.dialect()))
    where = pg.split("WHERE", 1)[1]
    assert "NOT" in where and "widgets.name =" in where  # "label" is field_map'ed to name
    assert "ORDER BY widgets.price DESC NULLS FIRST, widgets.made_at ASC NULLS LAST" in pg
    assert "LIMIT" in pg and "OFFSET" in pg
    lite = str(result.statement.compile(dialect=sqlite.dialect()))
    assert "LIMIT" in lite

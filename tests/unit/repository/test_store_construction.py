"""Building a store per request (the seed's pattern) reuses what never changes per class pair
and table: the automatic mapper, the root table's plan, the queue table's column check."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy.core import ModelMapper, SQLAlchemyRepository
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.queue import DurableQueue, queue_columns


class Base(DeclarativeBase):
    pass


class Parcel(AggregateRoot[str]):
    id: str
    weight: int


class ParcelModel(VersionMixin, Base):
    __tablename__ = "construction_parcels"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    weight: Mapped[int] = mapped_column(sa.Integer)


class Crate(AggregateRoot[str]):
    id: str
    weight: int


class CrateModel(Base):  # no version column
    __tablename__ = "construction_crates"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    weight: Mapped[int] = mapped_column(sa.Integer)


def test_repositories_of_one_class_pair_share_their_plan() -> None:
    first = SQLAlchemyRepository(Parcel, ParcelModel)
    second = SQLAlchemyRepository(Parcel, ParcelModel)
    assert second.mapper is first.mapper
    assert second._root is first._root
    assert first._root.version is not None


def test_a_given_mapper_is_used_and_the_version_column_is_part_of_the_key() -> None:
    own = ModelMapper(Parcel, ParcelModel)
    repo = SQLAlchemyRepository(Parcel, ParcelModel, own)
    assert repo.mapper is own
    assert repo.mapper is not SQLAlchemyRepository(Parcel, ParcelModel).mapper
    unversioned = SQLAlchemyRepository(Parcel, ParcelModel, version_column="absent")
    assert unversioned._root is not SQLAlchemyRepository(Parcel, ParcelModel)._root
    assert unversioned._root.version is None


def test_other_class_pairs_get_their_own_plan() -> None:
    assert SQLAlchemyRepository(Crate, CrateModel).mapper.db_model_cls is CrateModel
    assert SQLAlchemyRepository(Crate, CrateModel)._root.version is None


def test_a_table_without_the_queue_columns_is_refused_every_time() -> None:
    md = sa.MetaData()
    good = sa.Table("construction_queue", md, *queue_columns())
    bad = sa.Table("construction_not_a_queue", md, sa.Column("id", sa.Integer, primary_key=True))
    DurableQueue(good)
    DurableQueue(good)  # checked once, accepted again
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="not a queue table"):
            DurableQueue(bad)
    with pytest.raises(ConfigurationError, match="missing columns \\['absent'\\]"):
        DurableQueue(good, key_column="absent")

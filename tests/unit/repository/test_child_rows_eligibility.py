"""Which aggregates get only-what-changed child writes (``repository/child_rows.py``), decided
from the tables alone: everything else keeps the full rewrite."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot
from cqrs_ddd_core.domain.entity import Entity
from cqrs_ddd_persistence_sqlalchemy.core import ModelMapper
from cqrs_ddd_persistence_sqlalchemy.mixins import VersionMixin
from cqrs_ddd_persistence_sqlalchemy.repository.child_rows import ChildRowMemo


class Base(DeclarativeBase):
    pass


class Line(Entity[str]):
    id: str
    n: int


class Doc(AggregateRoot[str]):
    id: str
    lines: list[Line] = []


class DocModel(VersionMixin, Base):
    __tablename__ = "docs"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    lines: Mapped[list[LineModel]] = relationship()


class LineModel(Base):
    __tablename__ = "doc_lines"
    doc_id: Mapped[str] = mapped_column(ForeignKey("docs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class UDocModel(VersionMixin, Base):
    __tablename__ = "udocs"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    lines: Mapped[list[ULineModel]] = relationship()


class ULineModel(Base):
    __tablename__ = "udoc_lines"
    __table_args__ = (UniqueConstraint("doc_id", "n"),)
    doc_id: Mapped[str] = mapped_column(ForeignKey("udocs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class IDocModel(VersionMixin, Base):
    __tablename__ = "idocs"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    lines: Mapped[list[ILineModel]] = relationship()


class ILineModel(Base):
    __tablename__ = "idoc_lines"
    doc_id: Mapped[str] = mapped_column(ForeignKey("idocs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, unique=True)


def test_leaf_children_with_keys_from_the_entity_are_compared() -> None:
    assert ChildRowMemo(ModelMapper(Doc, DocModel), versioned=True).enabled


def test_without_a_version_column_children_are_rewritten() -> None:
    # last-writer-wins tables: the rows remembered may be somebody else's by now
    assert not ChildRowMemo(ModelMapper(Doc, DocModel), versioned=False).enabled


def test_another_unique_constraint_keeps_the_rewrite() -> None:
    assert not ChildRowMemo(ModelMapper(Doc, UDocModel), versioned=True).enabled
    assert not ChildRowMemo(ModelMapper(Doc, IDocModel), versioned=True).enabled


def test_rows_are_not_remembered_when_a_key_is_missing_or_repeated() -> None:
    memo = ChildRowMemo(ModelMapper(Doc, DocModel), versioned=True)
    doc = Doc(id="d", lines=[Line(id="a", n=1), Line(id="a", n=2)])
    memo.saved(doc, {"id": "d"}, 1)
    assert memo._rows == {}  # two lines with one key: the save rewrites
    doc.lines.pop()
    memo.saved(doc, {"id": "d"}, 1)
    assert list(memo._rows) == [id(doc)]
    del doc
    assert memo._rows == {}  # dropped with the aggregate

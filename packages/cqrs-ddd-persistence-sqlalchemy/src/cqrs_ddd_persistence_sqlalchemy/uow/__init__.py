"""``SQLAlchemyUnitOfWork``: the one transaction model of the library (see
:mod:`.unit_of_work`; its transaction is :mod:`.transaction`)."""

from cqrs_ddd_persistence_sqlalchemy.uow.unit_of_work import EventSink as EventSink
from cqrs_ddd_persistence_sqlalchemy.uow.unit_of_work import (
    SQLAlchemyUnitOfWork as SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.uow.unit_of_work import current_uow as current_uow

__all__ = ["EventSink", "SQLAlchemyUnitOfWork", "current_uow"]

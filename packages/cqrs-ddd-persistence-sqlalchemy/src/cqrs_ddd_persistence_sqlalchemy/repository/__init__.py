"""Aggregates in tables: ``SQLAlchemyRepository`` and its pieces.

- :mod:`.plans` — mapping plans (column, embedded value object, child table) and converters;
- :mod:`.mapper` — ``ModelMapper``: rows / ORM instances <-> entities;
- :mod:`.loader` — loading aggregates with their children (one ``IN`` query per relationship);
- :mod:`.writes`, :mod:`.child_rows` — version-checked inserts, updates and deletes, child rows;
- :mod:`.search`, :mod:`.results` — specification searches, lazy results and streaming;
- :mod:`.root`, :mod:`.store` — the root table's shape, and the repository itself.

The public names are re-exported by :mod:`cqrs_ddd_persistence_sqlalchemy.core`.
"""

from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper as ModelMapper
from cqrs_ddd_persistence_sqlalchemy.repository.plans import FieldConverter as FieldConverter
from cqrs_ddd_persistence_sqlalchemy.repository.results import ResultList as ResultList
from cqrs_ddd_persistence_sqlalchemy.repository.results import (
    SQLAlchemySearchResult as SQLAlchemySearchResult,
)
from cqrs_ddd_persistence_sqlalchemy.repository.store import (
    SQLAlchemyRepository as SQLAlchemyRepository,
)

__all__ = [
    "FieldConverter",
    "ModelMapper",
    "ResultList",
    "SQLAlchemyRepository",
    "SQLAlchemySearchResult",
]

"""cqrs-ddd-persistence-sqlalchemy: async SQLAlchemy 2 persistence for DDD/CQRS.

``metadata`` holds every library table (``metadata.create_all`` creates them; include it in
Alembic's ``target_metadata``).
"""

from cqrs_ddd_core.errors import (
    ConcurrencyError as ConcurrencyError,
)
from cqrs_ddd_core.errors import (
    CQRSDDDError as CQRSDDDError,
)
from cqrs_ddd_core.errors import (
    NotFoundError as NotFoundError,
)
from cqrs_ddd_core.errors import (
    OptimisticConcurrencyError as OptimisticConcurrencyError,
)
from cqrs_ddd_core.errors import (
    PersistenceError as PersistenceError,
)
from cqrs_ddd_persistence_sqlalchemy import advanced as advanced

# Importing the sub-packages registers every library table on ``metadata``.
from cqrs_ddd_persistence_sqlalchemy import core as core
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyRepository as SQLAlchemyRepository
from cqrs_ddd_persistence_sqlalchemy.core import SQLAlchemyUnitOfWork as SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.engine import configure_engine as configure_engine
from cqrs_ddd_persistence_sqlalchemy.engine import create_engine as create_engine
from cqrs_ddd_persistence_sqlalchemy.errors import register_metadata_for_sqlite_constraints
from cqrs_ddd_persistence_sqlalchemy.schema import NAMING_CONVENTION as NAMING_CONVENTION
from cqrs_ddd_persistence_sqlalchemy.schema import metadata as metadata
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps as json_dumps
from cqrs_ddd_persistence_sqlalchemy.serialization import json_loads as json_loads

register_metadata_for_sqlite_constraints(metadata)

__version__ = "0.1.0"

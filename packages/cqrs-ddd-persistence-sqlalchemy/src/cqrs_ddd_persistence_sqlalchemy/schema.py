"""The library's own ``MetaData`` and its naming convention.

Every library table (events, outbox, sagas, projections positions, snapshots, jobs, scheduled
commands) is defined on :data:`metadata`, so ``metadata.create_all`` creates them all and an
Alembic ``env.py`` can include them::

    from cqrs_ddd_persistence_sqlalchemy import metadata as cqrs_metadata
    target_metadata = [Base.metadata, cqrs_metadata]

The naming convention makes constraint names stable: Alembic diffs stay quiet and the error
translator maps violations by constraint name.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["NAMING_CONVENTION", "metadata"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

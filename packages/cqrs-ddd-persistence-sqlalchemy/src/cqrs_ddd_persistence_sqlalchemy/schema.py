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

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["MAX_IDENTIFIER_BYTES", "NAMING_CONVENTION", "check_channel", "metadata"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: PostgreSQL's identifier limit (``NAMEDATALEN - 1``), in bytes: it applies to LISTEN/NOTIFY
#: channel names too.
MAX_IDENTIFIER_BYTES = 63


def check_channel(channel: str) -> str:
    """A LISTEN/NOTIFY channel name, refused at once (``ConfigurationError``) when PostgreSQL
    would refuse it at ``pg_notify`` / ``LISTEN`` time: empty, or over 63 bytes."""
    if not channel or len(channel.encode()) > MAX_IDENTIFIER_BYTES:
        raise ConfigurationError(
            f"NOTIFY channel {channel[:80]!r} must be 1 to {MAX_IDENTIFIER_BYTES} bytes long "
            "(PostgreSQL's identifier limit)"
        )
    return channel

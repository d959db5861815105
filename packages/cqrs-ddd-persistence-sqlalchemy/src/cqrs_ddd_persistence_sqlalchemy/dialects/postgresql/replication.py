"""PostgreSQL streaming replication: WAL positions of the primary and of a standby.

Positions are read as byte offsets (``pg_lsn - '0/0'``, a ``numeric``) so that comparing them is
comparing integers. The primary's position after a commit is ``pg_current_wal_insert_lsn()``:
at or past the end of the commit record whatever ``synchronous_commit`` says (the write and
flush positions may still be before it with ``synchronous_commit = off``). A standby has
replayed that commit, and shows its rows to every later query, once
``pg_last_wal_replay_lsn()`` is at or past it.
"""

from __future__ import annotations

from sqlalchemy import text

from cqrs_ddd_persistence_sqlalchemy.dialects.interface import ReplicaStatus
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner, kept

__all__ = ["PostgresReplication"]

_COMMIT_POSITION = kept(text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))
# Flushed WAL is what a standby can have received: one at or past it has caught up.
_PRIMARY_POSITION = kept(text("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn"))
_REPLAY_POSITION = kept(text("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"))
_STATUS = kept(
    text(
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
        "extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
    )
)


class PostgresReplication:
    """:class:`~..interface.ReplicationSql` for PostgreSQL (hot standbys)."""

    async def commit_position(self, runner: StatementRunner) -> int:
        """The primary's WAL position, read after a commit: at or past that commit's record."""
        return int((await runner.fetch(_COMMIT_POSITION))[0][0])

    async def primary_position(self, runner: StatementRunner) -> int:
        """How far the primary has flushed its WAL (what a standby can have received)."""
        return int((await runner.fetch(_PRIMARY_POSITION))[0][0])

    async def replayed(self, runner: StatementRunner) -> int:
        """How far a standby has replayed (0 for a server that is not a standby)."""
        value = (await runner.fetch(_REPLAY_POSITION))[0][0]
        return int(value) if value is not None else 0

    async def status(self, runner: StatementRunner) -> ReplicaStatus:
        """A standby's state: in recovery, replayed position, age of its last replayed
        commit (seconds, ``None`` before any)."""
        in_recovery, replayed, age = (await runner.fetch(_STATUS))[0]
        return ReplicaStatus(
            standby=bool(in_recovery),
            replayed=int(replayed) if replayed is not None else 0,
            replay_age=float(age) if age is not None else None,
        )

"""Which engines run behind a connection pooler, and what that changes (generic part).

``create_engine(url, pooler="transaction")`` records a :class:`Pooler` for the engine's pool;
generic code asks :func:`pooler_of` instead of looking at URLs or drivers:

- the execution (``execution/resolve.py``) runs single statements in a transaction of their own
  instead of in autocommit when the pooler carries per-transaction settings (a statement
  outside a transaction would run without them);
- the dialect's LISTEN helpers return ``None`` (workers and subscribers poll).

The driver side (no named prepared statement outliving a transaction, settings applied with
``SET LOCAL``) is the dialect's: ``dialects/postgresql/pooler.py``; the hook sending the
settings after ``BEGIN`` is the execution's (``execution/resolve.py::install_pooler``).
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["POOLER_MODES", "Pooler", "check_pooler_mode", "pooler_of", "set_pooler"]

#: Pooler modes ``create_engine(pooler=...)`` accepts. Session-mode poolers need nothing:
#: a client keeps its server connection for the whole session, as on a direct connection.
POOLER_MODES = ("transaction",)


@dataclass(frozen=True, slots=True)
class Pooler:
    """An engine's pooler: its mode and the server settings applied per transaction."""

    mode: str
    #: ``(name, value)`` pairs set with ``SET LOCAL`` at the start of every transaction.
    settings: tuple[tuple[str, str], ...] = ()
    #: The dialect's one statement applying ``settings`` (sent right after ``BEGIN``).
    begin_sql: str | None = None


# Keyed by the pool: ``AsyncEngine.execution_options()`` makes other engines over the same pool
# (and the same server connections behind the pooler).
_POOLERS: WeakKeyDictionary[Pool, Pooler] = WeakKeyDictionary()


def check_pooler_mode(mode: object) -> str | None:
    """``mode`` if it is a pooler mode (or ``None``); otherwise ``ConfigurationError``."""
    if mode is None:
        return None
    if isinstance(mode, str) and mode in POOLER_MODES:
        return mode
    raise ConfigurationError(
        f"pooler={mode!r} is not a pooler mode; accepted: {', '.join(POOLER_MODES)} "
        "(or none for a direct connection or a session-mode pooler)"
    )


def set_pooler(engine: AsyncEngine, pooler: Pooler) -> None:
    _POOLERS[engine.sync_engine.pool] = pooler


def pooler_of(engine: AsyncEngine) -> Pooler | None:
    """The pooler ``engine`` was created for (``None``: a direct connection)."""
    return _POOLERS.get(engine.sync_engine.pool)

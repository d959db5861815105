"""Which SQLAlchemy and asyncpg versions the fast path was tested with, and the internals it
needs from them (imported here only)."""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy.util.concurrency import await_only as await_only
from sqlalchemy.util.concurrency import greenlet_spawn as greenlet_spawn

__all__ = [
    "TESTED",
    "await_only",
    "begin_with",
    "end_transaction",
    "fast_path_supported",
    "greenlet_spawn",
    "start_transaction",
]

logger = logging.getLogger(__name__)

#: distribution -> (lowest tested, first untested) as (major, minor) pairs.
TESTED: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "sqlalchemy": ((2, 0), (2, 2)),
    "asyncpg": ((0, 29), (0, 33)),
}

_verdict: bool | None = None


def _major_minor(text: str) -> tuple[int, int]:
    parts = [*text.split("."), "0"][:2]
    digits = ["".join(ch for ch in p if ch.isdigit()) or "0" for p in parts]
    return int(digits[0]), int(digits[1])


def fast_path_supported() -> bool:
    """Whether the installed versions are tested ones and ``CQRS_FAST_PATH`` is not ``0``
    (decided once per process; an untested version is logged once)."""
    global _verdict
    if _verdict is not None:
        return _verdict
    if os.environ.get("CQRS_FAST_PATH", "1").strip().lower() in {"0", "false", "no", "off"}:
        _verdict = False
        return _verdict
    for dist, (low, high) in TESTED.items():
        try:
            found = _major_minor(version(dist))
        except PackageNotFoundError:
            _verdict = False
            return _verdict
        if not low <= found < high:
            logger.info(
                "cqrs-ddd: %s %s is not a version the asyncpg fast path was tested with "
                "(%s.%s to below %s.%s); statements go through SQLAlchemy",
                dist,
                version(dist),
                *low,
                *high,
            )
            _verdict = False
            return _verdict
    _verdict = True
    return _verdict


async def start_transaction(adapter: Any) -> None:
    """Make sure the asyncpg transaction SQLAlchemy began on ``adapter`` (its DBAPI
    connection) has sent its ``BEGIN``: SQLAlchemy's adapter starts it lazily, at the first
    statement *it* runs. SQLAlchemy 2.0 tracks it with ``_started``, 2.1 with
    ``_transaction``."""
    started = getattr(adapter, "_started", None)
    if started is None:
        started = adapter._transaction is not None
    if not started:
        await adapter._start_transaction()


async def end_transaction(adapter: Any, *, commit: bool) -> None:
    """Commit or roll back, on asyncpg directly, the transaction :func:`start_transaction`
    began, and clear SQLAlchemy's record of it first: it is over whatever the outcome."""
    transaction = adapter._transaction
    adapter._transaction = None
    if getattr(adapter, "_started", None) is not None:
        adapter._started = False
    if transaction is not None:
        await (transaction.commit() if commit else transaction.rollback())


def begin_with(adapter: Any, driver: Any, sql: str) -> None:
    """Begin SQLAlchemy's transaction on ``adapter`` (its asyncpg DBAPI connection) and run
    ``sql`` in it as one simple-protocol statement on ``driver`` (no prepared statement).
    Called from a ``begin`` event, inside SQLAlchemy's greenlet."""

    async def begin() -> None:
        await start_transaction(adapter)
        await driver.execute(sql)

    await_only(begin())

"""Read-your-writes: the WAL position of the last commit in the current context.

A commit on the primary of an engine with replicas records the primary's WAL position after it
in a context variable (the current request or task, and the tasks it starts). A later read in
that context goes to a replica only once the replica has replayed that position
(:mod:`.routing`). A web application that serves the next request elsewhere carries the
position as text (PostgreSQL's LSN spelling, ``"16/B374D848"``): :func:`last_commit` gives it,
:func:`read_after` restores it::

    response.set_cookie("rw", last_commit() or "")      # after the command
    read_after(request.cookies.get("rw"))                 # before the next request's queries
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from cqrs_ddd_core.errors import InvalidValueError

__all__ = ["PRIMARY_ONLY", "last_commit", "position", "read_after", "record"]

_position: ContextVar[int | None] = ContextVar("cqrs_ddd_commit_position", default=None)
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")

#: A position no replica reaches: reads go to the primary (a commit whose position could not
#: be read).
PRIMARY_ONLY = (1 << 64) - 1


def position() -> int | None:
    """The position reads in this context must see (``None``: any replica will do)."""
    return _position.get()


def record(lsn: int) -> None:
    """Note a commit at ``lsn``: reads in this context wait for it (positions only grow)."""
    current = _position.get()
    if current is None or lsn > current:
        _position.set(lsn)


def last_commit() -> str | None:
    """The position of the last commit in this context, as text to carry to a later request
    (``None``: nothing committed here)."""
    lsn = _position.get()
    return None if lsn is None else f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def read_after(token: str | None) -> None:
    """Make reads in this context wait for a replica that replayed the commit ``token`` (a
    :func:`last_commit` of an earlier request); ``None`` or ``""`` changes nothing.

    Raises:
        InvalidValueError: ``token`` is not a WAL position (nothing is changed).
    """
    if not token:
        return
    found = _LSN.fullmatch(token) if isinstance(token, str) else None
    if found is None:
        raise InvalidValueError(f"not a commit position: {str(token)[:40]!r}")
    record(int(found.group(1), 16) << 32 | int(found.group(2), 16))

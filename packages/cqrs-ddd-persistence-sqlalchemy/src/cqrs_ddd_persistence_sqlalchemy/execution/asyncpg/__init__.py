"""The asyncpg fast path: compiled statements sent on asyncpg's own connection.

The only place in the library that imports SQLAlchemy's private compiler state, its greenlet
helpers or asyncpg's connection object. It implements the same :class:`~..protocol.Execution`
as the reference path and is used only where it is known to be right:

- the engine's driver is asyncpg, and the installed SQLAlchemy and asyncpg are versions this
  module was tested with (:data:`~.compat.TESTED`); otherwise the reference path, with one log
  line;
- it is not switched off (``create_engine(..., fast_path=False)`` or ``CQRS_FAST_PATH=0``);
- the statement qualifies (no parameter rendered per execution, no result column SQLAlchemy
  would convert, no ``schema_translate_map``); otherwise that statement goes through
  SQLAlchemy.
"""

from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.compat import (
    fast_path_supported as fast_path_supported,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.execution import (
    AsyncpgExecution as AsyncpgExecution,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.guard import (
    DEFAULT_PING_AFTER as DEFAULT_PING_AFTER,
)
from cqrs_ddd_persistence_sqlalchemy.execution.asyncpg.guard import (
    install_checkout_guard as install_checkout_guard,
)

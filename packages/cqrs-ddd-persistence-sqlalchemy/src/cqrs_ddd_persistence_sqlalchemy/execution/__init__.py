"""The execution seam (see :mod:`.protocol`): every statement of the library goes through it.

- :mod:`.protocol` — ``Executor`` (one connection) and ``Execution`` (one engine);
- :mod:`.reference` — SQLAlchemy's public API, any async driver;
- :mod:`.asyncpg` — the fast path (the only user of SQLAlchemy / driver internals);
- :mod:`.resolve` — ``execution_for(engine)`` picks one per engine, ``executor_for(conn)``.
"""

from cqrs_ddd_persistence_sqlalchemy.execution.pinning import unpinned as unpinned
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Execution as Execution
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Executor as Executor
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Params as Params
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import Pin as Pin
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner as StatementRunner

__all__ = ["Execution", "Executor", "Params", "Pin", "StatementRunner", "unpinned"]

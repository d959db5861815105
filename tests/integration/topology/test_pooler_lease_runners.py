"""One runner per projection behind a transaction-mode pooler.

Behind PgBouncer the session advisory lock this replaced let two runners lead at once and stayed
held after both stopped (its lock and unlock landed on different server connections). The lease
row holds no session state, so the same two-runner tests as on a direct connection
(``tests/integration/leases/test_lease_runners.py``) run here through the session's PgBouncer,
with engines in pooler mode: exactly one runner active on every batch, a stale leader's batch
refused by the fencing token, nothing held once both stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import PG_URL, DatabaseUrl
from tests.topology.pgbouncer import Bouncer

# the runner tests' helpers live beside the projection tests (as tests/integration/leases does)
_HELPERS = str(Path(__file__).parents[1] / "projections")
if _HELPERS not in sys.path:
    sys.path.insert(0, _HELPERS)

from tests.integration.leases.test_lease_runners import (  # noqa: E402
    test_a_stale_leaders_batch_is_refused_and_changes_nothing,
    test_two_runners_exactly_one_active_on_every_batch,
)

__all__ = [
    "test_a_stale_leaders_batch_is_refused_and_changes_nothing",
    "test_two_runners_exactly_one_active_on_every_batch",
]


@pytest.fixture
def database_url(
    pgbouncer: Bouncer, pooled_schema: str, library_tables: AsyncEngine
) -> DatabaseUrl:
    """The test's schema through PgBouncer, every engine in pooler mode."""
    return DatabaseUrl(pgbouncer.url(PG_URL), pooled_schema, {"pooler": "transaction"})

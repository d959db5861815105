"""Seed README, "Testing": its fixtures and test run as written (in-memory SQLite).

The block is executed into this module's globals at import, so pytest collects its ``engine``
and ``uow`` fixtures and ``test_create_order`` exactly as a user's test module would. The same
block then runs against PostgreSQL with only the URL replaced, its fixtures driven by hand.
"""

from __future__ import annotations

from typing import Any

from tests.acceptance.seed_examples.seed_blocks import TESTING
from tests.acceptance.seed_examples.seed_prelude import ORDER_MODELS, PRELUDE, run_block

#: The repository the block's test uses (the README defines it in its Quick Start).
ORDER_REPO = "order_repo = SQLAlchemyRepository(Order, OrderModel)\n"

for _part in (PRELUDE, ORDER_MODELS, ORDER_REPO, TESTING):
    exec(compile(_part, "<seed README: Testing>", "exec", dont_inherit=True), globals())


async def test_seed_testing_block_on_postgresql(pg_database: str) -> None:
    ns: dict[str, Any] = {"__name__": "seed_testing_pg"}
    for part in (PRELUDE, ORDER_MODELS, ORDER_REPO):
        await run_block(part, ns)
    await run_block(TESTING, ns, pg_database)
    engine_fixture = ns["engine"]._get_wrapped_function()
    uow_fixture = ns["uow"]._get_wrapped_function()
    engines = engine_fixture()
    engine = await anext(engines)
    try:
        uows = uow_fixture(engine)
        uow = await anext(uows)
        try:
            await ns["test_create_order"](uow)
        finally:
            await uows.aclose()
    finally:
        await engines.aclose()

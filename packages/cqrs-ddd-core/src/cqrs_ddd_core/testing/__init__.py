"""Contract test suites every adapter must pass (requires the ``testing`` extra: pytest).

Subclass a contract in your test module and provide its ``harness`` fixture::

    class TestMyRepository(RepositoryContract):
        @pytest.fixture
        async def harness(self, engine):
            ...
            return RepositoryHarness(repository=repo, new_uow=lambda: SQLAlchemyUnitOfWork(sf))
"""

from cqrs_ddd_core.testing.event_store_contract import EventStoreContract as EventStoreContract
from cqrs_ddd_core.testing.event_store_contract import EventStoreHarness as EventStoreHarness
from cqrs_ddd_core.testing.inbox_contract import InboxContract as InboxContract
from cqrs_ddd_core.testing.inbox_contract import InboxHarness as InboxHarness
from cqrs_ddd_core.testing.inbox_contract import ManualClock as ManualClock
from cqrs_ddd_core.testing.models import ContractOrder as ContractOrder
from cqrs_ddd_core.testing.models import ContractOrderPlaced as ContractOrderPlaced
from cqrs_ddd_core.testing.outbox_contract import OutboxContract as OutboxContract
from cqrs_ddd_core.testing.outbox_contract import OutboxHarness as OutboxHarness
from cqrs_ddd_core.testing.repository_contract import RepositoryContract as RepositoryContract
from cqrs_ddd_core.testing.repository_contract import RepositoryHarness as RepositoryHarness

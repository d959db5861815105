"""PostgreSQL pieces of the durable queue: ``SKIP LOCKED`` claim, idempotent insert, NOTIFY."""

from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import (
    AUTOCOMMIT_SINGLE_STATEMENTS as AUTOCOMMIT_SINGLE_STATEMENTS,
)
from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import check_channel as check_channel
from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import claim_statement as claim_statement
from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import driver_cache as driver_cache
from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import insert_ignore as insert_ignore
from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import (
    notify_statement as notify_statement,
)
from cqrs_ddd_persistence_sqlalchemy.queue.postgres.claim import one_of as one_of

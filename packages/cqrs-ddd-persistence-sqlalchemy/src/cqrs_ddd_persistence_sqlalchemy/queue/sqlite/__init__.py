"""SQLite pieces of the durable queue: the guarded-UPDATE claim and idempotent insert."""

from cqrs_ddd_persistence_sqlalchemy.queue.sqlite.claim import (
    AUTOCOMMIT_SINGLE_STATEMENTS as AUTOCOMMIT_SINGLE_STATEMENTS,
)
from cqrs_ddd_persistence_sqlalchemy.queue.sqlite.claim import claim_statement as claim_statement
from cqrs_ddd_persistence_sqlalchemy.queue.sqlite.claim import driver_cache as driver_cache
from cqrs_ddd_persistence_sqlalchemy.queue.sqlite.claim import insert_ignore as insert_ignore
from cqrs_ddd_persistence_sqlalchemy.queue.sqlite.claim import one_of as one_of

"""The durable queue's statements, compiled without a database."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from cqrs_ddd_core.errors import ConfigurationError, LeaseLostError
from cqrs_ddd_persistence_sqlalchemy.core import outbox_table
from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED, DialectSupport
from cqrs_ddd_persistence_sqlalchemy.queue import Backoff, DurableQueue, Outcome, queue_columns

pg_queue = SUPPORTED["postgresql"]
sqlite_queue = SUPPORTED["sqlite"]

PG: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
SQLITE: Dialect = sqlite.dialect()


def compiled(queue: DurableQueue, module: DialectSupport, dialect: Dialect) -> str:
    stmt = queue._claim_statement(module, None)
    return " ".join(str(stmt.compile(dialect=dialect)).split())


def test_postgres_claim_is_one_skip_locked_statement() -> None:
    sql = compiled(DurableQueue(outbox_table), pg_queue, PG)
    assert sql.startswith("WITH claimable AS MATERIALIZED (SELECT outbox_messages.id")
    assert "FOR UPDATE OF outbox_messages SKIP LOCKED" in sql
    assert "ORDER BY outbox_messages.id LIMIT" in sql
    assert "UPDATE outbox_messages SET" in sql and "FROM claimable" in sql
    assert "RETURNING outbox_messages.id" in sql
    assert "outbox_messages.locked_until IS NULL OR outbox_messages.locked_until <=" in sql
    assert "EXISTS" not in sql
    # A constant, so that the partial index over pending rows serves generic (prepared) plans.
    assert "outbox_messages.status = 'pending'" in sql


def test_postgres_claim_with_per_key_ordering() -> None:
    queue = DurableQueue(outbox_table, key_column="partition_key")
    sql = compiled(queue, pg_queue, PG)
    assert "NOT (EXISTS (SELECT * FROM outbox_messages AS prior" in sql
    assert "prior.partition_key = outbox_messages.partition_key" in sql
    assert "prior.id < outbox_messages.id" in sql
    assert "prior.status = 'pending'" in sql


def test_sqlite_claim_is_a_guarded_update() -> None:
    sql = compiled(DurableQueue(outbox_table), sqlite_queue, SQLITE)
    assert sql.startswith("UPDATE outbox_messages SET")
    assert "WHERE outbox_messages.id IN (SELECT outbox_messages.id" in sql
    assert "FOR UPDATE" not in sql
    # The due condition is checked again on the row being updated.
    assert sql.count("outbox_messages.locked_until IS NULL") == 2
    assert "RETURNING" in sql


def test_dialect_flags() -> None:
    assert pg_queue.autocommit_statements is True
    assert sqlite_queue.autocommit_statements is False
    notify = pg_queue.notify_statement("chan")
    assert notify is not None and "pg_notify" in str(notify.compile(dialect=PG))
    assert sqlite_queue.notify_statement("chan") is None


def test_queue_table_validation() -> None:
    with pytest.raises(ConfigurationError, match="missing columns"):
        DurableQueue(Table("t", MetaData(), Column("id", String(5), primary_key=True)))
    with pytest.raises(ConfigurationError, match="missing columns"):
        DurableQueue(outbox_table, key_column="nope")
    with pytest.raises(ConfigurationError):
        DurableQueue(outbox_table, lease_seconds=0)
    with pytest.raises(ConfigurationError):
        DurableQueue(outbox_table, max_attempts=0)


def test_queue_columns_are_fresh_per_call() -> None:
    a, b = queue_columns(), queue_columns(key_column="k")
    assert {c.name for c in b} - {c.name for c in a} == {"k"}
    assert not {id(c) for c in a} & {id(c) for c in b}


def test_backoff_grows_caps_and_jitters() -> None:
    plain = Backoff(base=1.0, factor=2.0, maximum=10.0, jitter=0.0)
    assert [plain.seconds(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    jittered = Backoff(base=1.0, factor=2.0, maximum=100.0, jitter=0.2)
    rng = random.Random(1)
    samples = [jittered.seconds(3, rng=rng) for _ in range(200)]
    assert all(3.2 <= s <= 4.8 for s in samples)
    assert len(set(samples)) > 100  # spread, so failures retried together do not retry together
    assert jittered.upper_bound(3) == pytest.approx(4.8)


def test_outcome_raise_if_lost() -> None:
    Outcome(done=(1,)).raise_if_lost()
    with pytest.raises(LeaseLostError, match=r"\[2, 3\]"):
        Outcome(done=(1,), lost=(3, 2)).raise_if_lost()

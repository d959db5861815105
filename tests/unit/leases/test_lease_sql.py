"""The lease's SQL on both dialects, compiled without a database: the database's clock only,
and taking a lease is one statement that bumps the token of an expired one."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cqrs_ddd_persistence_sqlalchemy.dialects import SUPPORTED
from cqrs_ddd_persistence_sqlalchemy.leases.lease import _acquire_statement
from cqrs_ddd_persistence_sqlalchemy.types.clock import utcclock, utcclock_after


def _sql(element: sa.ClauseElement, dialect: sa.engine.Dialect) -> str:
    return str(element.compile(dialect=dialect))


def test_the_clock_is_the_servers_wall_clock() -> None:
    seconds = sa.bindparam("s", type_=sa.Float)
    assert _sql(sa.select(utcclock()), postgresql.dialect()).startswith("SELECT clock_timestamp()")
    assert "make_interval(secs => CAST(%(s)s AS DOUBLE PRECISION))" in _sql(
        sa.select(utcclock_after(seconds)), postgresql.dialect()
    )
    lite = _sql(sa.select(utcclock_after(seconds)), sqlite.dialect())
    assert "strftime('%Y-%m-%d %H:%M:%f', 'now', '+' || CAST(? AS TEXT) || ' seconds')" in lite


def test_acquire_is_one_upsert_taking_over_only_an_expired_lease() -> None:
    for name, support in SUPPORTED.items():
        dialect = support.sqlalchemy_dialect()
        text = " ".join(_sql(_acquire_statement(support), dialect).split())
        assert text.startswith("INSERT INTO cqrs_leases"), name
        assert "ON CONFLICT (name) DO UPDATE SET" in text, name
        assert "token = (cqrs_leases.token + " in text, name
        assert "WHERE cqrs_leases.expires_at <= " in text, name
        assert text.endswith(("RETURNING cqrs_leases.token", "RETURNING token")), name

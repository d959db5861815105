"""Differential test: in-memory evaluator == SQLite == PostgreSQL on generated specifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from spec_dataset import ROWS, SpecOrder, load
from spec_db import Harness, harness
from spec_strategies import specifications

from cqrs_ddd_persistence_sqlalchemy.specifications import build_sqla_filter
from cqrs_ddd_specifications import Specification

EXAMPLES = 500


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with harness(request.param, tmp_path, load) as h:
        yield h


def test_spec_differential_generated(db: Harness) -> None:
    # deferred (dialect chosen at compile time) and eager (dialect= given) must both agree
    seen: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec=specifications())
    def check(spec: Specification) -> None:
        seen.append(1)
        expected = {row.id for row in ROWS if spec.is_satisfied_by(row)}
        deferred = build_sqla_filter(SpecOrder, spec.to_dict())
        assert db.ids(sa.select(SpecOrder.id).where(deferred)) == expected, spec.to_dict()
        eager = build_sqla_filter(SpecOrder, spec, dialect=db.dialect)
        assert db.ids(sa.select(SpecOrder.id).where(eager)) == expected, spec.to_dict()

    check()
    assert len(seen) >= EXAMPLES

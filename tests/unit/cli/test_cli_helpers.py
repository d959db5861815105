"""Small pieces of the CLI: formatting, thresholds, object loading, Alembic hooks."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from cqrs_ddd_core.errors import ConfigurationError
from cqrs_ddd_persistence_sqlalchemy import metadata
from cqrs_ddd_persistence_sqlalchemy.alembic import make_include_object, target_metadata
from cqrs_ddd_persistence_sqlalchemy.cli._loader import load_object
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import CliError
from cqrs_ddd_persistence_sqlalchemy.cli._views import format_seconds
from cqrs_ddd_persistence_sqlalchemy.cli.health import FAIL, OK, WARN, Thresholds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.04, "0.0s"), (12.34, "12.3s"), (184, "3m 04s"), (7500, "2h 05m")],
)
def test_cli_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_cli_thresholds() -> None:
    limits = Thresholds(warn_s=10, fail_s=100)
    assert [limits.grade(s) for s in (None, 9.9, 10, 99, 100)] == [OK, OK, WARN, WARN, FAIL]


def test_cli_load_object() -> None:
    assert load_object("cqrs_ddd_persistence_sqlalchemy:metadata") is metadata
    for bad, message in [
        ("no_colon", "is not of the form"),
        ("no_such_module_xyz:thing", "cannot import"),
        ("cqrs_ddd_persistence_sqlalchemy:nope", "has no attribute"),
    ]:
        with pytest.raises(CliError, match=message):
            load_object(bad)


def test_cli_alembic_target_metadata() -> None:
    mine = MetaData()
    assert target_metadata(mine) == [mine, metadata]
    assert target_metadata(mine, metadata) == [mine, metadata]
    clash = MetaData()
    from sqlalchemy import Column, Integer, Table

    Table("cqrs_events", clash, Column("id", Integer, primary_key=True))
    with pytest.raises(ConfigurationError, match="cqrs_events"):
        target_metadata(clash)


def test_cli_alembic_include_object_options() -> None:
    hook = make_include_object(exclude_prefixes=("proj_",), keep_unknown_reflected=False)
    assert hook(None, "proj_orders", "table", True, None) is False
    assert hook(None, "stray", "table", True, None) is True  # autogenerate may drop it
    assert hook(None, "spatial_ref_sys", "table", True, None) is False

    class Index:
        class table:
            name = "proj_orders"

    assert hook(Index(), "ix_x", "index", True, None) is False

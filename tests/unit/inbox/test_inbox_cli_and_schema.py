"""The inbox table in ``schema check``; ``outbox relay --publisher kafka`` wiring."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cqrs_ddd_core.ports.outbox import OutboxMessage
from cqrs_ddd_persistence_sqlalchemy.cli import app
from cqrs_ddd_persistence_sqlalchemy.cli._runtime import CliError
from cqrs_ddd_persistence_sqlalchemy.cli.outbox import PublisherKind, make_publisher
from cqrs_ddd_persistence_sqlalchemy.publishers.kafka import KafkaPublisher, kafka_headers

runner = CliRunner()


def test_inbox_schema_check_reports_a_missing_inbox_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    assert runner.invoke(app, ["schema", "create", "-d", url]).exit_code == 0
    assert runner.invoke(app, ["schema", "check", "-d", url]).exit_code == 0
    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("DROP TABLE cqrs_inbox")
    result = runner.invoke(app, ["schema", "check", "-d", url])
    assert result.exit_code == 1
    assert "cqrs_inbox" in result.output


def test_inbox_schema_sql_has_the_inbox_table() -> None:
    result = runner.invoke(app, ["schema", "sql", "--dialect", "postgresql"])
    assert "CREATE TABLE cqrs_inbox (" in result.output
    assert "CONSTRAINT pk_cqrs_inbox PRIMARY KEY (consumer, message_id)" in result.output
    assert "CREATE INDEX ix_cqrs_inbox_handled_at ON cqrs_inbox (handled_at)" in result.output


def test_inbox_cli_relay_kafka_publisher_from_options() -> None:
    publisher = make_publisher(PublisherKind.kafka, "kafka://k1:9092, k2:9093", "orders")
    assert isinstance(publisher, KafkaPublisher)
    assert publisher.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert publisher.topic(OutboxMessage(event_type="OrderPlaced")) == "orders"
    default = make_publisher(PublisherKind.kafka, None, None)
    assert default.bootstrap_servers == ["127.0.0.1:9092"]
    assert default.topic(OutboxMessage(event_type="OrderPlaced")) == "OrderPlaced"


def test_inbox_cli_relay_kafka_bad_broker_url() -> None:
    with pytest.raises(CliError, match="HOST:PORT"):
        make_publisher(PublisherKind.kafka, "k1:9092,,", None)


def test_inbox_cli_relay_help_names_kafka() -> None:
    result = runner.invoke(app, ["outbox", "relay", "--help"])
    assert result.exit_code == 0
    assert "kafka" in result.output


def test_inbox_kafka_headers_carry_ids_and_trace_context() -> None:
    message = OutboxMessage(
        event_type="OrderPlaced",
        correlation_id="corr",
        partition_key="order-1",
        metadata={"traceparent": "00-abc-def-01", "tracestate": 7},
    )
    headers = dict(kafka_headers(message))
    assert headers["message_id"] == message.message_id.encode()
    assert headers["correlation_id"] == b"corr"
    assert headers["traceparent"] == b"00-abc-def-01"
    assert "tracestate" not in headers  # only string values are trace context

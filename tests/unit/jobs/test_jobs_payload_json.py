"""The batch enqueue's payload text: pydantic's JSON in one pass, the library codec's value and
errors (no database)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, computed_field

from cqrs_ddd_advanced_core.jobs import BackgroundJob
from cqrs_ddd_core.errors import SerializationError
from cqrs_ddd_persistence_sqlalchemy.jobs.base import payload_json
from cqrs_ddd_persistence_sqlalchemy.serialization import json_dumps


class Point(BaseModel):
    x: float
    y: float


class Rich(BackgroundJob):
    name: str
    at: datetime
    amount: Decimal
    points: list[Point] = []
    extra: dict[str, Any] = {}
    maybe: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return len(self.points)


class Custom(BackgroundJob):
    n: int

    def arguments(self) -> dict[str, Any]:
        return {"doubled": self.n * 2}


class Constants(BackgroundJob):
    model_config = ConfigDict(ser_json_inf_nan="constants")
    f: float


class Empty(BackgroundJob):
    pass


def test_the_text_holds_the_value_the_library_codec_writes() -> None:
    job = Rich(
        name='é ✓ "q"',
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        amount=Decimal("1.10"),
        points=[Point(x=1.5, y=-2)],
        extra={"k": [1, 2.5, "s"]},
    )
    text = payload_json(job)
    assert json.loads(text) == json.loads(json_dumps(job.arguments()))
    assert json.loads(payload_json(Empty())) == {}
    assert json.loads(payload_json(Custom(n=4))) == {"doubled": 8}  # an override is honoured


def _outcome(make: Any) -> Any:
    try:
        return json.loads(make())
    except SerializationError:
        return SerializationError


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_float_ends_as_the_library_codec_ends_it(bad: float) -> None:
    jobs = [
        Rich(name="a", at=datetime.now(UTC), amount=Decimal(1), extra={"v": bad}),
        Rich(name="a", at=datetime.now(UTC), amount=Decimal(1), points=[Point(x=bad, y=0)]),
        Constants(f=bad),
    ]
    for job in jobs:
        expected = _outcome(lambda job=job: json_dumps(job.arguments()))
        assert _outcome(lambda job=job: payload_json(job)) == expected
    # pydantic's constants are refused (never stored as invalid JSON)
    assert _outcome(lambda: payload_json(Constants(f=bad))) is SerializationError
    # a real null stays a null
    text = payload_json(Rich(name="a", at=datetime.now(UTC), amount=Decimal(1), maybe=None))
    assert json.loads(text)["maybe"] is None

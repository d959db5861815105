"""When the library makes spans: the ``otel`` extra, ``CQRS_TRACING``, a tracer provider set.

Each case runs in a fresh interpreter: OpenTelemetry keeps the first global provider it is
given, and "not installed" must mean nothing of it was imported.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import sys
{prelude}
from cqrs_ddd_persistence_sqlalchemy.observability import metrics, tracing
before = tracing.tracing_enabled()
metrics.uow_committed()
provider_set = False
if {set_provider}:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
    provider_set = True
imported = sys.modules.get("opentelemetry") is not None
print(before, tracing.tracing_enabled(), metrics.enabled(), imported)
"""

BLOCKED = "sys.modules['opentelemetry'] = None  # as if the extra were not installed"


def _probe(prelude: str, set_provider: bool, **env: str) -> str:
    import os

    code = _PROBE.format(prelude=prelude, set_provider=set_provider)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("prelude", "set_provider", "env", "expected"),
    [
        # The API's default provider makes no-op spans: none until a provider is set.
        ("", True, {}, "False True True True"),
        # Switched off: OpenTelemetry is not even imported.
        ("", False, {"CQRS_TRACING": "0", "CQRS_METRICS": "0"}, "False False False False"),
        # Not installed: nothing fails, nothing is made.
        (BLOCKED, False, {}, "False False False False"),
    ],
    ids=["provider-set-later", "switched-off", "not-installed"],
)
def test_spans_are_made_only_when_they_can_be_recorded(
    prelude: str, set_provider: bool, env: dict[str, str], expected: str
) -> None:
    assert _probe(prelude, set_provider, **env) == expected

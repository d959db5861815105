"""How the projection stores take their bind, and where one of their operations runs its
statements (the execution seam)."""

from __future__ import annotations

from typing import Any

from cqrs_ddd_core.errors import ConfigurationError

__all__ = ["one_bind"]


def one_bind(bind: Any, session_factory: Any, owner: str) -> Any:
    """The bind given positionally or as ``bind=``, or as the seed's ``session_factory=``."""
    if bind is not None and session_factory is not None:
        raise ConfigurationError(
            f"{owner}: pass the bind once (positionally, bind= or session_factory=), not twice"
        )
    return bind if bind is not None else session_factory

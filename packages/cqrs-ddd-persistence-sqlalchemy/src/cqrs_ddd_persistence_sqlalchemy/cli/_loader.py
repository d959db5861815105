"""Load the application's objects (projections, job handlers, sagas) named on the command line."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from cqrs_ddd_persistence_sqlalchemy.cli._runtime import CliError

__all__ = ["load_object"]


def load_object(reference: str) -> Any:
    """The object ``module.path:attribute`` (``attribute`` may be dotted).

    The current directory is importable, as for ``uvicorn app:app``.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise CliError(f"{reference!r} is not of the form 'package.module:attribute'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise CliError(f"{module_name!r} has no attribute {attribute!r}") from exc
    return obj

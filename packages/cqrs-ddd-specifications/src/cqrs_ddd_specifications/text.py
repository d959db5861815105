"""Text helpers shared by the evaluator and the SQL compilers: LIKE patterns and word tokens."""

from __future__ import annotations

import re

__all__ = ["escape_like", "like_to_regex", "tokenize"]

_TOKEN = re.compile(r"[a-z0-9]+")


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape ``%``, ``_`` and the escape character so ``text`` matches literally in LIKE."""
    return (
        text.replace(escape, escape + escape).replace("%", escape + "%").replace("_", escape + "_")
    )


def like_to_regex(pattern: str, *, escape: str = "\\") -> re.Pattern[str]:
    """Compile a LIKE pattern (``%``, ``_``, backslash escapes) to an anchored regex."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            out.append(re.escape(next(chars, escape)))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def tokenize(text: str) -> list[str]:
    """Split text into lower-case ASCII word tokens (the portable full-text model)."""
    return _TOKEN.findall(text.lower())

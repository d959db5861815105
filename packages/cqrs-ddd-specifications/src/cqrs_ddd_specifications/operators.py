"""The operator enum, its aliases and the families operators belong to.

Operators are enum members; every spelling a user may write (the seed README's ``eq``, ``gte``,
``@>``, ``st_within`` ...) is an alias resolved, case-insensitively, by :func:`resolve_operator`.
Registries and evaluators are keyed by the enum, never by free strings.

Example:
    >>> resolve_operator("GTE") is Operator.GTE
    True
"""

from __future__ import annotations

from enum import StrEnum

from cqrs_ddd_core.errors import OperatorNotFoundError

__all__ = [
    "ALIASES",
    "DISTANCE_OPERATORS",
    "FTS_OPERATORS",
    "GEOMETRY_OPERATORS",
    "JSON_OPERATORS",
    "LOGICAL_OPERATORS",
    "NEGATIONS",
    "NULL_OPERATORS",
    "Operator",
    "resolve_operator",
]


class Operator(StrEnum):
    """Every operator a specification may use; the value is the canonical JSON spelling."""

    # comparison
    EQ = "="
    NE = "!="
    GT = ">"
    LT = "<"
    GTE = ">="
    LTE = "<="
    IN = "in"
    NOT_IN = "not_in"
    ALL = "all"
    BETWEEN = "between"
    NOT_BETWEEN = "not_between"
    # string
    LIKE = "like"
    NOT_LIKE = "not_like"
    ILIKE = "ilike"
    CONTAINS = "contains"
    ICONTAINS = "icontains"
    STARTSWITH = "startswith"
    ISTARTSWITH = "istartswith"
    ENDSWITH = "endswith"
    IENDSWITH = "iendswith"
    REGEX = "regex"
    IREGEX = "iregex"
    # null / empty
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"
    IS_EMPTY = "is_empty"
    IS_NOT_EMPTY = "is_not_empty"
    # JSON
    JSON_CONTAINS = "json_contains"
    JSON_CONTAINED_BY = "json_contained_by"
    JSON_HAS_KEY = "json_has_key"
    JSON_HAS_ANY = "json_has_any"
    JSON_HAS_ALL = "json_has_all"
    JSON_PATH_EXISTS = "json_path_exists"
    # geometry
    INTERSECTS = "intersects"
    WITHIN = "within"
    CONTAINS_GEOM = "contains_geom"
    TOUCHES = "touches"
    CROSSES = "crosses"
    OVERLAPS = "overlaps"
    DISJOINT = "disjoint"
    GEOM_EQUALS = "geom_equals"
    DISTANCE_LT = "distance_lt"
    DWITHIN = "dwithin"
    BBOX_INTERSECTS = "bbox_intersects"
    # full text
    FTS = "fts"
    FTS_PHRASE = "fts_phrase"
    # logical
    AND = "and"
    OR = "or"
    NOT = "not"

    def __str__(self) -> str:
        return self.value


#: Alternative spellings (lower case) of operators, on top of each member's value and name.
ALIASES: dict[str, Operator] = {
    "eq": Operator.EQ,
    "==": Operator.EQ,
    "ne": Operator.NE,
    "neq": Operator.NE,
    "<>": Operator.NE,
    "gt": Operator.GT,
    "gte": Operator.GTE,
    "ge": Operator.GTE,
    "lt": Operator.LT,
    "lte": Operator.LTE,
    "le": Operator.LTE,
    "nin": Operator.NOT_IN,
    "@>": Operator.JSON_CONTAINS,
    "<@": Operator.JSON_CONTAINED_BY,
    "?": Operator.JSON_HAS_KEY,
    "?|": Operator.JSON_HAS_ANY,
    "?&": Operator.JSON_HAS_ALL,
    "@?": Operator.JSON_PATH_EXISTS,
    "st_within": Operator.WITHIN,
    "st_intersects": Operator.INTERSECTS,
    "st_contains": Operator.CONTAINS_GEOM,
    "st_dwithin": Operator.DWITHIN,
    "st_touches": Operator.TOUCHES,
    "st_crosses": Operator.CROSSES,
    "st_overlaps": Operator.OVERLAPS,
    "st_disjoint": Operator.DISJOINT,
    "st_equals": Operator.GEOM_EQUALS,
    "&&": Operator.BBOX_INTERSECTS,
    "starts_with": Operator.STARTSWITH,
    "ends_with": Operator.ENDSWITH,
    "istarts_with": Operator.ISTARTSWITH,
    "iends_with": Operator.IENDSWITH,
    "null": Operator.IS_NULL,
    "isnull": Operator.IS_NULL,
    "not_null": Operator.IS_NOT_NULL,
    "notnull": Operator.IS_NOT_NULL,
    "empty": Operator.IS_EMPTY,
    "not_empty": Operator.IS_NOT_EMPTY,
    "~": Operator.REGEX,
    "~*": Operator.IREGEX,
    "search": Operator.FTS,
    "phrase": Operator.FTS_PHRASE,
}

_LOOKUP: dict[str, Operator] = {
    **{member.value: member for member in Operator},
    **{member.name.lower(): member for member in Operator},
    **ALIASES,
}

LOGICAL_OPERATORS = frozenset({Operator.AND, Operator.OR, Operator.NOT})
NULL_OPERATORS = frozenset(
    {Operator.IS_NULL, Operator.IS_NOT_NULL, Operator.IS_EMPTY, Operator.IS_NOT_EMPTY}
)
JSON_OPERATORS = frozenset(
    {
        Operator.JSON_CONTAINS,
        Operator.JSON_CONTAINED_BY,
        Operator.JSON_HAS_KEY,
        Operator.JSON_HAS_ANY,
        Operator.JSON_HAS_ALL,
        Operator.JSON_PATH_EXISTS,
    }
)
DISTANCE_OPERATORS = frozenset({Operator.DISTANCE_LT, Operator.DWITHIN})
GEOMETRY_OPERATORS = frozenset(
    {
        Operator.INTERSECTS,
        Operator.WITHIN,
        Operator.CONTAINS_GEOM,
        Operator.TOUCHES,
        Operator.CROSSES,
        Operator.OVERLAPS,
        Operator.DISJOINT,
        Operator.GEOM_EQUALS,
        Operator.BBOX_INTERSECTS,
    }
    | DISTANCE_OPERATORS
)
FTS_OPERATORS = frozenset({Operator.FTS, Operator.FTS_PHRASE})

#: Negative operators and the positive operator they are the exact negation of. A negative
#: operator matches exactly the rows its positive operator does not match - NULLs included.
NEGATIONS: dict[Operator, Operator] = {
    Operator.NE: Operator.EQ,
    Operator.NOT_IN: Operator.IN,
    Operator.NOT_BETWEEN: Operator.BETWEEN,
    Operator.NOT_LIKE: Operator.LIKE,
    Operator.IS_NOT_NULL: Operator.IS_NULL,
    Operator.IS_NOT_EMPTY: Operator.IS_EMPTY,
}


def resolve_operator(name: str | Operator, *, path: str | None = None) -> Operator:
    """Return the operator spelled ``name`` (a member, its value, its name or an alias).

    Raises:
        OperatorNotFoundError: ``name`` is no known spelling; the error carries suggestions.
    """
    if isinstance(name, Operator):
        return name
    if not isinstance(name, str):
        raise OperatorNotFoundError(repr(name), _LOOKUP, path=path)
    found = _LOOKUP.get(name.strip().lower())
    if found is None:
        raise OperatorNotFoundError(name, _LOOKUP, path=path)
    return found

"""Hypothesis strategies generating specifications over :mod:`spec_dataset`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st
from spec_dataset import BASE_TIME, COLORS, CUSTOMERS, NAMES, SKUS, STATUSES, TAGS, WORDS

from cqrs_ddd_specifications import Condition, Specification

_text_needles = st.sampled_from(
    ["50%", "%", "_", "a_b", "\\", "'", "it", "Widget", "widget", "x", "", "off", "o", "_off"]
)
_status = st.sampled_from([s for s in STATUSES if s is not None] + ["nope"])
_regex = st.sampled_from(["^a", "e$", "a.t", "[ab]", "^$", "ship", "^(active|shipped)$"])
_like = st.sampled_from(["%", "a%", "%e", "_ctive", "50\\%%", "%\\_%", "a\\_b", "%'%", "%i%"])
_ints = st.sampled_from([-5, 0, 50, 100, 101, 150, 999, 1000])
_json_docs = st.recursive(
    st.one_of(
        st.sampled_from([*TAGS, *COLORS, 1, 2.5, 3, 10, True, False, None, "10", "x"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(
            st.sampled_from(["tags", "color", "n", "flag", "nested", "a", "b"]), inner, max_size=2
        ),
    ),
    max_leaves=4,
)
_times = st.sampled_from([BASE_TIME + dt.timedelta(days=d) for d in (-1, 0, 1, 5, 10, 40, 41)])


def _leaf(field: str, op: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Specification]:
    return values.map(lambda v: Condition(field, op, v))


def leaves() -> st.SearchStrategy[Specification]:
    flag = st.booleans()
    choices = [
        _leaf("status", "eq", _status),
        _leaf("status", "ne", _status),
        _leaf("status", "in", st.lists(_status, max_size=3)),
        _leaf("status", "not_in", st.lists(_status, max_size=3)),
        _leaf("status", "is_null", flag),
        _leaf("status", "is_empty", flag),
        _leaf("status", "like", _like),
        _leaf("status", "not_like", _like),
        _leaf("status", "ilike", _like),
        _leaf("status", "regex", _regex),
        _leaf("status", "iregex", _regex),
        *[
            _leaf("name", op, _text_needles)
            for op in (
                "contains",
                "icontains",
                "startswith",
                "istartswith",
                "endswith",
                "iendswith",
            )
        ],
        _leaf("name", "eq", st.sampled_from([n for n in NAMES if n])),
        *[_leaf("total", op, _ints) for op in ("eq", "ne", "gt", "gte", "lt", "lte")],
        _leaf("total", "in", st.lists(_ints, max_size=3)),
        _leaf("total", "not_in", st.lists(_ints, max_size=3)),
        _leaf("total", "between", st.lists(_ints, min_size=2, max_size=2).map(sorted)),
        _leaf("total", "not_between", st.lists(_ints, min_size=2, max_size=2).map(sorted)),
        _leaf("price", "gt", st.sampled_from([0, 0.5, 1, 99.5, 100])),
        _leaf("created_at", "gte", _times),
        _leaf("created_at", "lt", _times),
        _leaf("created_at", "between", st.lists(_times, min_size=2, max_size=2).map(sorted)),
        _leaf(
            "description",
            "fts",
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join),
        ),
        _leaf(
            "description",
            "fts_phrase",
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join),
        ),
        _leaf("meta", "json_contains", _json_docs),
        _leaf("meta", "json_contained_by", _json_docs),
        _leaf("meta", "json_has_key", st.sampled_from(["tags", "color", "n", "premium", "zzz"])),
        _leaf(
            "meta",
            "json_has_any",
            st.lists(st.sampled_from(["tags", "color", "flag", "q"]), min_size=1, max_size=2),
        ),
        _leaf(
            "meta",
            "json_has_all",
            st.lists(st.sampled_from(["tags", "color", "flag", "q"]), min_size=1, max_size=2),
        ),
        _leaf(
            "meta",
            "json_path_exists",
            st.sampled_from(["$.tags", "$.nested.a", "$.tags[0]", "$.nested.a.b", "$.n"]),
        ),
        _leaf("meta", "is_null", flag),
        _leaf("meta", "is_empty", flag),
        _leaf("meta.tags", "json_contains", st.lists(st.sampled_from(TAGS), max_size=2)),
        _leaf("meta.tags", "all", st.lists(st.sampled_from(TAGS), min_size=1, max_size=2)),
        _leaf("meta.tags", "is_empty", flag),
        _leaf("meta.color", "eq", st.sampled_from([*COLORS, "zzz"])),
        _leaf("meta.color", "ne", st.sampled_from(COLORS)),
        _leaf("meta.color", "in", st.lists(st.sampled_from(COLORS), max_size=2)),
        _leaf("meta.color", "icontains", st.sampled_from(["r", "E", ""])),
        _leaf("meta.color", "is_null", flag),
        _leaf("meta.n", "gt", st.sampled_from([-5, 0, 1, 2.5, 10])),
        _leaf("meta.n", "ne", st.sampled_from([0, 10, 2.5])),
        _leaf("meta.n", "eq", st.sampled_from([10, "10", True])),
        _leaf("meta.flag", "eq", st.booleans()),
        _leaf("meta.nested.a", "eq", st.sampled_from([1, "x"])),
        _leaf("customer.name", "eq", st.sampled_from(CUSTOMERS)),
        _leaf("customer.name", "ne", st.sampled_from(CUSTOMERS)),
        _leaf("customer.name", "istartswith", st.sampled_from(["ac", "O'", "g"])),
        _leaf("items.sku", "eq", st.sampled_from(SKUS)),
        _leaf("items.sku", "ne", st.sampled_from(SKUS)),
        _leaf("items.sku", "all", st.lists(st.sampled_from(SKUS), min_size=1, max_size=2)),
        _leaf("items.qty", "gt", st.integers(0, 5)),
    ]
    return st.one_of(*choices)


def specifications() -> st.SearchStrategy[Specification]:
    return st.recursive(
        leaves(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(
                lambda xs: Specification.from_dict(
                    {"op": "and", "conditions": [x.to_dict() for x in xs]}
                )
            ),
            st.lists(inner, min_size=2, max_size=3).map(
                lambda xs: Specification.from_dict(
                    {"op": "or", "conditions": [x.to_dict() for x in xs]}
                )
            ),
            inner.map(lambda x: ~x),
        ),
        max_leaves=6,
    )

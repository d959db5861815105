"""Repository searches: a specification and query options compiled to one lazy query.

The filter is built for the dialect the search will run on whenever that is known before its
session is opened (from the unit of work it joins, or from what the repository was built
with): the statement is then cacheable, and SQLAlchemy compiles each shape once instead of on
every execution (dialect-specific leaves otherwise wait for compile time, which keeps the whole
statement out of the compiled cache). A search built for one dialect and consumed on a session
of another is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from cqrs_ddd_core.errors import ConfigurationError, InvalidSpecificationError
from cqrs_ddd_persistence_sqlalchemy.binding import Binding
from cqrs_ddd_persistence_sqlalchemy.dialects import DialectSupport, dialect_for
from cqrs_ddd_persistence_sqlalchemy.repository.results import Hydrate, SQLAlchemySearchResult
from cqrs_ddd_persistence_sqlalchemy.repository.root import RootTable
from cqrs_ddd_persistence_sqlalchemy.specifications import (
    apply_query_options,
    build_sqla_filter,
    keyset,
)
from cqrs_ddd_persistence_sqlalchemy.uow import SQLAlchemyUnitOfWork
from cqrs_ddd_specifications import QueryOptions, Specification, encode_cursor

__all__ = ["search"]


def search(
    root: RootTable,
    source: Binding,
    hydrate: Hydrate,
    spec_or_options: Any,
    options: Any,
    *,
    joined: SQLAlchemyUnitOfWork | None,
    include_archived: bool,
) -> SQLAlchemySearchResult[Any]:
    """The lazy result of ``SQLAlchemyRepository.search`` (see its docstring).

    Raises:
        InvalidSpecificationError: not a specification or options, or options that do not
            return aggregates (``select_fields`` / ``group_by``).
        SpecificationError: what compiling the specification or the options raises.
    """
    spec: Any = spec_or_options
    if options is None and _is_options(spec):
        spec, options = None, spec
    if isinstance(options, Mapping):
        options = QueryOptions.from_dict(options)
    if options is not None and not isinstance(options, QueryOptions):
        raise InvalidSpecificationError(
            f"options must be QueryOptions or a dict, got {type(options).__name__}"
        )
    if options is not None and (options.select_fields or options.group_by):
        raise InvalidSpecificationError(
            "repository.search returns aggregates: select_fields/group_by belong in a query "
            "handler (build_sqla_filter + apply_query_options)"
        )
    built_for = _dialect_of(source, joined)
    model = root.mapper.db_model_cls
    base = root.live(root.select, include_archived)
    if spec is not None:
        if not isinstance(spec, Specification | Mapping):
            raise InvalidSpecificationError(f"expected a specification, got {type(spec).__name__}")
        base = base.where(build_sqla_filter(model, spec, root.hooks, dialect=built_for))
    paged = apply_query_options(base, model, options, root.hooks)
    count = sa.select(sa.func.count()).select_from(base.order_by(None).subquery())
    opts: QueryOptions | None = options
    renamed = root.renamed
    attr_of = root.mapper.attr_of

    def cursor_of(row: Any) -> str:
        assert opts is not None
        # rows are keyed by Column.key; the keyset names attributes or entity fields
        values = {attr_of.get(k, k): v for k, v in row.items()}
        values.update({name: values[target] for name, target in renamed.items()})
        order = keyset(model, opts)
        return encode_cursor(order, [values[o.field] for o in order])

    return SQLAlchemySearchResult(
        statement=base,
        paged=paged,
        count_statement=count,
        session_scope=lambda: _scope(source, joined, built_for),
        hydrate=hydrate,
        cursor_of=cursor_of if opts is not None else None,
        limit=opts.limit if opts is not None else None,
    )


def _dialect_of(source: Binding, joined: SQLAlchemyUnitOfWork | None) -> DialectSupport | None:
    """The dialect a search will run on, when it is known before its session is opened.

    Known from the unit of work it joins, else from what the store was built with (a
    session, a unit of work, an engine or an ``async_sessionmaker`` bound to an engine);
    ``None`` for a plain factory callable (the filter is then compiled per execution).
    """
    if joined is not None:
        return dialect_for(joined.dialect)  # without creating its ORM session
    if source.bound_session is not None:
        return dialect_for(source.bound_session)
    engine = source.engine
    return dialect_for(engine) if engine is not None else None


@asynccontextmanager
async def _scope(
    source: Binding, joined: SQLAlchemyUnitOfWork | None, built_for: DialectSupport | None
) -> AsyncIterator[AsyncSession]:
    # the UoW resolved when search() was called, else whatever is ambient when consumed
    async with source.read_session(
        joined if joined is not None and joined.active else None
    ) as session:
        found = dialect_for(session)
        if built_for is not None and found is not built_for:
            raise ConfigurationError(
                f"this search was built for {built_for.name!r} but is consumed on a "
                f"{found.name!r} session: consume it in the unit of work it was created in, or "
                "create it where it is consumed"
            )
        yield session


def _is_options(value: Any) -> bool:
    if isinstance(value, QueryOptions):
        return True
    if isinstance(value, Specification | BaseModel):
        return False
    # a dict is a specification when it has the AST's "op" key, options otherwise
    return isinstance(value, Mapping) and "op" not in value

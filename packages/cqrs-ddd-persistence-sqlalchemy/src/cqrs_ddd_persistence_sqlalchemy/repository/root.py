"""What the repository knows of an aggregate's root table, worked out once from its mapper.

The single-column primary key (and how an id becomes its value), the optimistic-lock column,
the archive columns of :class:`~cqrs_ddd_persistence_sqlalchemy.mixins.ArchivableModelMixin`,
the entity fields renamed by ``field_map`` (specifications may name either), the column
``SELECT`` reads start from, and the memo of child rows saves compare with.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cqrs_ddd_core.errors import ConfigurationError, OptimisticConcurrencyError
from cqrs_ddd_persistence_sqlalchemy.execution.protocol import StatementRunner, kept
from cqrs_ddd_persistence_sqlalchemy.repository.child_rows import ChildRowMemo
from cqrs_ddd_persistence_sqlalchemy.repository.loader import column_select, keyed_select
from cqrs_ddd_persistence_sqlalchemy.repository.mapper import ModelMapper

__all__ = ["NO_ROW", "RootTable", "root_table"]

#: An id that cannot be a key of the table (wrong type): matches no row.
NO_ROW: Any = object()


class RootTable:
    """The root table of ``mapper``'s aggregates.

    Args:
        mapper: the aggregate's mapper.
        version_column: attribute of the optimistic-lock column (absent: no version checks).

    Raises:
        ConfigurationError: the table has no single-column primary key, or no entity field
            maps to it.
    """

    def __init__(self, mapper: ModelMapper[Any], *, version_column: str) -> None:
        self.mapper = mapper
        self.table = mapper.table
        self.entity_name = mapper.entity_cls.__name__
        mm = mapper.model_mapper
        pk = list(mm.primary_key)
        if len(pk) != 1:
            raise ConfigurationError(
                f"{mapper.db_model_cls.__name__}: an aggregate table needs a single-column "
                "primary key"
            )
        self.pk: sa.Column[Any] = pk[0]  # type: ignore[assignment]
        self.pk_key = self.pk.key
        id_plan = next((p for p in mapper.columns if p.key == self.pk_key), None)
        if id_plan is None:
            raise ConfigurationError(
                f"{self.entity_name} has no field mapped to the primary key {self.pk_key!r}"
            )
        self._id_to_db = id_plan.to_db
        try:
            self._pk_type: type[Any] = self.pk.type.python_type
        except NotImplementedError:  # a type without a Python type: take ids as given
            self._pk_type = object
        attrs = {a.key: a for a in mm.column_attrs}
        self.version: Any = attrs[version_column].columns[0] if version_column in attrs else None
        self.version_key: str | None = self.version.key if self.version is not None else None
        archived = attrs.get("archived_at")
        self.archived_at: Any = archived.columns[0] if archived is not None else None
        self.archived_by: Any = attrs["archived_by"].columns[0] if "archived_by" in attrs else None
        #: Entity fields that ``field_map`` renames, to the model attribute they name.
        self.renamed = {
            name: target for name, target in mapper.field_map.items() if target in attrs
        }
        #: Resolution hooks letting specifications and options name those entity fields.
        self.hooks = {
            name: getattr(mapper.db_model_cls, target).expression
            for name, target in self.renamed.items()
        } or None
        self.select = column_select(mapper)
        #: The same columns labelled by key: what loads through the execution seam select.
        self.keyed_select = keyed_select(mapper)
        self._gets: dict[bool, Any] = {}
        self._updates: dict[tuple[str, ...], Any] = {}
        # Saves write only the child rows that changed where that is safe (child_rows.py).
        self.children = ChildRowMemo(mapper, versioned=self.version is not None)

    def key(self, entity_id: Any) -> Any:
        """The primary key value for ``entity_id``, or :data:`NO_ROW` when it cannot be one
        (``get("abc")`` on a UUID or integer key finds nothing rather than failing)."""
        value = self._id_to_db(entity_id)
        if value is None or isinstance(value, self._pk_type):
            return value
        try:
            return self._pk_type(value)
        except (TypeError, ValueError):
            return NO_ROW

    def live(self, stmt: Any, include_archived: bool) -> Any:
        """``stmt`` restricted to rows not archived (unless ``include_archived``)."""
        if self.archived_at is None or include_archived:
            return stmt
        return stmt.where(self.archived_at.is_(None))

    def get_statement(self, include_archived: bool) -> Any:
        """The ``SELECT`` of the row whose key is the ``k`` parameter, built once and kept
        (the execution seam may prepare it)."""
        stmt = self._gets.get(include_archived)
        if stmt is None:
            found = self.keyed_select.where(self.pk == sa.bindparam("k"))
            stmt = self._gets[include_archived] = kept(self.live(found, include_archived))
        return stmt

    def update_statement(
        self, values: dict[str, Any], key: Any, loaded: int, new_version: int
    ) -> tuple[Any, dict[str, Any]]:
        """The version-checked ``UPDATE`` of a row to ``values`` and its parameters: one
        statement per set of columns, built once and kept (the execution seam may prepare it)."""
        columns = tuple(k for k in values if k != self.pk_key)
        stmt = self._updates.get(columns)
        if stmt is None:
            stmt = sa.update(self.table).where(self.pk == sa.bindparam("w_key"))
            changes: dict[str, Any] = {c: sa.bindparam(f"v_{c}") for c in columns}
            if self.version is not None:
                stmt = stmt.where(self.version == sa.bindparam("w_loaded"))
                changes[self.version.key] = sa.bindparam("v_version_")
            if self.archived_at is not None:
                stmt = stmt.where(self.archived_at.is_(None))
            if not changes:  # nothing but the key: still check the row is there
                changes = {self.pk.key: sa.bindparam("w_key")}
            stmt = self._updates[columns] = kept(stmt.values(changes))
        params = {f"v_{c}": values[c] for c in columns}
        params["w_key"] = key
        if self.version is not None:
            params["w_loaded"] = loaded
            params["v_version_"] = new_version
        return stmt, params

    def conflict(
        self, entity_id: Any, expected: Any, actual: Any, what: str
    ) -> OptimisticConcurrencyError:
        return OptimisticConcurrencyError(
            f"{self.entity_name} {entity_id!r}: {what} (expected version {expected}, "
            f"found {'no row' if actual is None else actual})",
            entity_type=self.entity_name,
            entity_id=entity_id,
            expected_version=expected,
            actual_version=actual,
        )

    async def actual_version(self, runner: StatementRunner, key: Any) -> Any:
        """The row's version now (``1`` without a version column; ``None``: no row)."""
        column = self.version if self.version is not None else sa.literal(1)
        found = await runner.fetch(sa.select(column).where(self.pk == key))
        return found[0][0] if found else None


def root_table(mapper: ModelMapper[Any], version_column: str) -> RootTable:
    """``RootTable(mapper, version_column=...)``, kept on the mapper (built once per mapper and
    version column: repositories are built per request)."""
    key = ("root_table", version_column)
    root = mapper.statements.get(key)
    if root is None:
        root = mapper.statements[key] = RootTable(mapper, version_column=version_column)
    return root

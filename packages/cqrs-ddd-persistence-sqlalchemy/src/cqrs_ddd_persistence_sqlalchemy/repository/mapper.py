"""``ModelMapper``: pydantic entities <-> SQLAlchemy declarative models.

Mapping is by field name, compiled once per (entity, model) pair into a plan:

- a field whose name (or ``field_map`` target) is a column attribute maps to that column;
  enums, UUIDs, Decimals, aware datetimes and value objects are converted for the column's type
  (a value object or a list of them goes to a JSON column as JSON, to a string column as JSON text);
- a value-object field with no column of its own but columns ``<field>_<sub>`` for its sub-fields
  is *embedded* (flattened into those columns);
- a field naming a one-to-many (or one-to-one) relationship maps to a child table through a nested
  mapper for the child entity type (``list[OrderLine]`` -> ``OrderLineModel``);
- columns managed by the database (version, audit and archive columns of the mixins) are read into
  the entity when it has such a field, and never written from it.

Loading validates through pydantic (``model_validate``), which turns the stored forms back into
enums, UUIDs, value objects, etc. Every failure is a :class:`~cqrs_ddd_core.errors.MappingError`
naming the field.

Example:
    >>> mapper = ModelMapper(Order, OrderModel, field_map={"customer": "customer_id"},
    ...                      exclude={"cache"}, converters={"tags": FieldConverter(",".join,
    ...                      lambda s: s.split(","))})
    >>> model = mapper.to_model(order)
    >>> order = mapper.to_entity(model)
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Mapper, RelationshipDirection, RelationshipProperty

from cqrs_ddd_core.domain.aggregate_root import AggregateRoot, set_persisted_version
from cqrs_ddd_core.errors import ConfigurationError, MappingError, suggest
from cqrs_ddd_persistence_sqlalchemy.repository.plans import (
    MANAGED_INFO_KEY,
    ChildPlan,
    ColumnPlan,
    EmbeddedPlan,
    FieldConverter,
    auto_to_db,
    field_error,
    is_model_type,
    list_item,
    unwrap_optional,
)

__all__ = ["FieldConverter", "ModelMapper", "automatic_mapper"]

E = TypeVar("E", bound=BaseModel)


class ModelMapper(Generic[E]):
    """Maps ``entity_cls`` (pydantic) to ``db_model_cls`` (declarative) and back.

    Args:
        entity_cls: the pydantic entity / aggregate class.
        db_model_cls: the mapped SQLAlchemy class.
        field_map: entity field -> model attribute, where the names differ.
        exclude: entity fields that are not persisted (loaded with their defaults).
        converters: per-field :class:`FieldConverter`.
        type_converters: per-type :class:`FieldConverter` (a field annotated with the type).
        embedded: value-object field -> column prefix (default ``"<field>_"``, auto-detected).
        child_mappers: relationship field -> mapper of the child entity (default: automatic).

    Example:
        >>> mapper = ModelMapper(Order, OrderModel)
        >>> row_values = mapper.to_values(order)   # for Core INSERT/UPDATE
        >>> model = mapper.to_model(order)         # an ORM instance
        >>> again = mapper.to_entity(model)
    """

    def __init__(
        self,
        entity_cls: type[E],
        db_model_cls: type[Any],
        *,
        field_map: Mapping[str, str] | None = None,
        exclude: Iterable[str] = (),
        converters: Mapping[str, FieldConverter] | None = None,
        type_converters: Mapping[type[Any], FieldConverter] | None = None,
        embedded: Mapping[str, str] | None = None,
        child_mappers: Mapping[str, ModelMapper[Any]] | None = None,
    ) -> None:
        self.entity_cls = entity_cls
        self.db_model_cls = db_model_cls
        self.field_map = dict(field_map or {})
        self.exclude = frozenset(exclude)
        self.converters = dict(converters or {})
        self.type_converters = dict(type_converters or {})
        self._embedded_prefixes = dict(embedded or {})
        self._child_mappers = dict(child_mappers or {})
        try:
            model_mapper = sa.inspect(db_model_cls)
        except sa.exc.NoInspectionAvailable as exc:
            raise ConfigurationError(f"{db_model_cls!r} is not a mapped class") from exc
        if not isinstance(model_mapper, Mapper):
            raise ConfigurationError(f"{db_model_cls!r} is not a mapped class")
        self.model_mapper: Mapper[Any] = model_mapper
        self.table: sa.Table = model_mapper.local_table  # type: ignore[assignment]
        #: Column.key -> attribute key, for every column attribute
        self.attr_of: dict[str, str] = {
            attr.columns[0].key: attr.key for attr in model_mapper.column_attrs
        }
        self.columns: list[ColumnPlan] = []
        self.embedded: list[EmbeddedPlan] = []
        self.children: list[ChildPlan] = []
        #: Statements built from this mapper once and kept (``repository/loader.py``).
        self.statements: dict[Any, Any] = {}
        self._compile()

    # -- plan ------------------------------------------------------------------------------
    def _compile(self) -> None:
        mm = self.model_mapper
        attrs = {a.key: a for a in mm.column_attrs}
        if not self.entity_cls.__pydantic_complete__:
            self.entity_cls.model_rebuild(raise_errors=False)
        for name, info in self.entity_cls.model_fields.items():
            if name in self.exclude:
                continue
            target = self.field_map.get(name, name)
            annotation = info.annotation
            if isinstance(annotation, typing.ForwardRef | str):
                raise field_error(
                    self.entity_cls,
                    name,
                    f"annotation {annotation!r} is not resolved: define the types it names "
                    f"first, or call {self.entity_cls.__name__}.model_rebuild()",
                )
            if target in attrs:
                column = attrs[target].columns[0]
                if not isinstance(column, sa.Column):
                    raise ConfigurationError(f"{target!r} is not a plain column")
                self.columns.append(self._column_plan(name, target, column, annotation))
            elif target in mm.relationships:
                self.children.append(self._child_plan(name, mm.relationships[target], annotation))
            elif (plan := self._embedded_plan(name, target, annotation, attrs)) is not None:
                self.embedded.append(plan)
            elif name not in self.field_map and not info.is_required():
                continue  # a field with a default and no column: not persisted
            else:
                hints = suggest(target, list(attrs) + list(mm.relationships.keys()))
                hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
                raise field_error(
                    self.entity_cls,
                    name,
                    f"no column or relationship {target!r} on {self.db_model_cls.__name__}{hint}"
                    " (map it with field_map= or leave it out with exclude=)",
                )

    def _converter_for(self, name: str, annotation: Any) -> FieldConverter | None:
        if name in self.converters:
            return self.converters[name]
        inner, _ = unwrap_optional(annotation)
        inner = typing.get_origin(inner) or inner  # set[str] -> set
        for tp, conv in self.type_converters.items():
            if inner is tp or (isinstance(inner, type) and issubclass(inner, tp)):
                return conv
        return None

    def _column_plan(
        self, name: str, attr: str, column: sa.Column[Any], annotation: Any
    ) -> ColumnPlan:
        writable = not column.info.get(MANAGED_INFO_KEY, False)
        conv = self._converter_for(name, annotation)
        if conv is not None:
            return ColumnPlan(name, attr, column.key, column, conv.to_db, conv.from_db, writable)
        to_db = auto_to_db(column, annotation)
        return ColumnPlan(name, attr, column.key, column, to_db, None, writable)

    def _embedded_plan(
        self, name: str, target: str, annotation: Any, attrs: Mapping[str, Any]
    ) -> EmbeddedPlan | None:
        inner, _ = unwrap_optional(annotation)
        if not is_model_type(inner):
            return None
        prefix = self._embedded_prefixes.get(name, f"{target}_")
        names = [(sub, f"{prefix}{sub}") for sub in inner.model_fields]
        if not names or any(attr not in attrs for _, attr in names):
            return None
        keys = tuple((sub, attr, attrs[attr].columns[0].key) for sub, attr in names)
        return EmbeddedPlan(name, keys, inner)

    def _child_plan(self, name: str, rel: RelationshipProperty[Any], annotation: Any) -> ChildPlan:
        if rel.direction is not RelationshipDirection.ONETOMANY:
            raise field_error(
                self.entity_cls,
                name,
                f"relationship {rel.key!r} is {rel.direction.name}: only one-to-many child "
                "tables are part of an aggregate (reference other aggregates by id)",
            )
        inner, _ = unwrap_optional(annotation)
        item = list_item(inner)
        many = item is not None
        child_type = item if many else inner
        if child_type is None or not is_model_type(child_type):
            raise field_error(
                self.entity_cls, name, f"a relationship needs entity types, got {annotation!r}"
            )
        child_mapper = self._child_mappers.get(name) or ModelMapper(child_type, rel.mapper.class_)
        link = tuple(
            (local.key, remote.key)
            for local, remote in rel.local_remote_pairs
            if isinstance(local, sa.Column) and isinstance(remote, sa.Column)
        )
        order_by = tuple(rel.order_by) if rel.order_by else tuple(rel.mapper.primary_key)
        return ChildPlan(name, rel, child_mapper, many, link, order_by)

    # -- entity -> database ----------------------------------------------------------------
    def to_values(self, entity: E) -> dict[str, Any]:
        """The column values of ``entity``'s own row, keyed by ``Column.key`` (children apart)."""
        values: dict[str, Any] = {}
        for plan in self.columns:
            if not plan.writable:
                continue
            raw = getattr(entity, plan.field)
            try:
                values[plan.key] = plan.to_db(raw)
            except MappingError:
                raise
            except Exception as exc:
                raise field_error(self.entity_cls, plan.field, f"cannot store: {exc}") from exc
        for emb in self.embedded:
            vo = getattr(entity, emb.field)
            for sub, _, key in emb.keys:
                values[key] = None if vo is None else getattr(vo, sub)
        return values

    def child_values(self, entity: E, plan: ChildPlan, parent: Mapping[str, Any]) -> list[Any]:
        """``(child entity, row values)`` of one relationship, foreign key columns filled in."""
        value = getattr(entity, plan.field)
        items = list(value or ()) if plan.many else ([] if value is None else [value])
        rows = []
        position = plan.mapper.position_key
        for index, child in enumerate(items):
            row = plan.mapper.to_values(child)
            for parent_key, child_key in plan.link:
                row[child_key] = parent[parent_key]
            if position is not None:
                row[position] = index
            rows.append((child, row))
        return rows

    @property
    def position_key(self) -> str | None:
        """A ``position`` column no entity field maps: filled with the index in the list."""
        attrs = self.model_mapper.column_attrs
        if "position" in attrs and all(p.attr != "position" for p in self.columns):
            return str(attrs["position"].columns[0].key)
        return None

    def to_model(self, entity: E) -> Any:
        """An ORM instance of the model holding ``entity``'s state (children included)."""
        values = self.to_values(entity)
        model = self.db_model_cls(**{self.attr_of[k]: v for k, v in values.items()})
        for plan in self.children:
            children = [
                plan.mapper.to_model(child) for child, _ in self.child_values(entity, plan, values)
            ]
            value = children if plan.many else next(iter(children), None)
            setattr(model, plan.relationship.key, value)
        return model

    # -- database -> entity ----------------------------------------------------------------
    def field_values(self, source: Any, *, keyed: bool = False) -> dict[str, Any]:
        """Entity field values read from ``source`` (an ORM instance, a row or a mapping;
        ``keyed``: anything read by ``source[column key]``, such as a driver's record)."""
        # rows and mappings are keyed by Column.key, ORM instances by attribute
        mapping = (
            source if keyed or isinstance(source, Mapping) else getattr(source, "_mapping", None)
        )
        orm = mapping is None
        get: Callable[[str], Any] = (
            (lambda k: getattr(source, k)) if mapping is None else mapping.__getitem__
        )
        data: dict[str, Any] = {}
        for plan in self.columns:
            raw = get(plan.attr if orm else plan.key)
            if plan.from_db is not None:
                try:
                    raw = plan.from_db(raw)
                except Exception as exc:
                    raise field_error(self.entity_cls, plan.field, f"cannot load: {exc}") from exc
            data[plan.field] = raw
        for emb in self.embedded:
            parts = {sub: get(attr if orm else key) for sub, attr, key in emb.keys}
            data[emb.field] = None if all(v is None for v in parts.values()) else parts
        return data

    def build(self, data: Mapping[str, Any], *, version: int | None = None) -> E:
        """Validate ``data`` into an entity (``MappingError`` naming the first bad field)."""
        try:
            entity = self.entity_cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = first.get("loc") or ("?",)
            name = str(loc[0])
            raise field_error(
                self.entity_cls, name, f"{first.get('msg')} (got {first.get('input')!r})"
            ) from exc
        if version is not None and isinstance(entity, AggregateRoot):
            set_persisted_version(entity, version)
        return entity

    def to_entity(self, source: Any) -> E:
        """The entity stored in ``source`` (an ORM instance with its children loaded, or a row)."""
        data = self.field_values(source)
        if not isinstance(source, Mapping) and not hasattr(source, "_mapping"):
            for plan in self.children:
                related = getattr(source, plan.relationship.key)
                if plan.many:
                    data[plan.field] = [plan.mapper.to_entity(c) for c in related or ()]
                else:
                    data[plan.field] = None if related is None else plan.mapper.to_entity(related)
        version = getattr(source, "version", None) if not isinstance(source, Mapping) else None
        return self.build(data, version=version if isinstance(version, int) else None)


# (entity class, model class) -> its automatic mapper. Repositories are built per request (the
# seed's pattern); the plan of a class pair never changes, so it is compiled once (about 40 us).
_AUTOMATIC: dict[tuple[type[Any], type[Any]], ModelMapper[Any]] = {}


def automatic_mapper(entity_cls: type[E], db_model_cls: type[Any]) -> ModelMapper[E]:
    """``ModelMapper(entity_cls, db_model_cls)``, built once per class pair and shared."""
    key = (entity_cls, db_model_cls)
    mapper = _AUTOMATIC.get(key)
    if mapper is None:
        mapper = _AUTOMATIC[key] = ModelMapper(entity_cls, db_model_cls)
    return mapper

"""Metadata filters: a small Mongo-like JSON language, validated once into a tree that each engine renders.

`{"genre": "sci-fi", "year": {"$gte": 2000}, "lang": {"$in": ["en", "de"]}}` matches documents whose
top-level metadata has all of those. Values compare with their JSON type: `1` never matches `true` or
`"1"`; numbers compare as numbers (`2005.0` equals `2005`), strings as strings (by code point), and a
missing key or a document without metadata is "not equal" to anything.

`parse_filter` checks the JSON and builds the tree (`Where`); it is the one place that decides what a
filter means. The embedded engine renders the tree to one SQLite WHERE clause (`sqlite_filter`, here),
the PostgreSQL engine to a jsonb expression (`gateway.storage.postgres.filters`); both are held to one
table of cases, so they give the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.storage.errors import InvalidFilter
from shared.json_types import json_type

MAX_IN_VALUES = 1024
MAX_DEPTH = 8
COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
FIELD_OPS = ("$eq", "$ne", "$in", "$nin", "$exists", *COMPARISONS)

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Equals:
    """`key` holds `value` (same JSON type; numbers by value)."""

    key: str
    value: Scalar


@dataclass(frozen=True)
class OneOf:
    """`key` holds one of `values`."""

    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Exists:
    """`key` is present (a JSON null counts as present)."""

    key: str


@dataclass(frozen=True)
class Compare:
    """`key` holds a number (or a string) that compares with `value` by `op` (`$gt`, `$gte`, `$lt`, `$lte`)."""

    key: str
    op: str
    value: str | int | float


@dataclass(frozen=True)
class Not:
    """The inner condition does not hold, a missing key or metadata included."""

    inner: Where


@dataclass(frozen=True)
class All:
    parts: tuple[Where, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Where, ...]


Where = Equals | OneOf | Exists | Compare | Not | All | AnyOf


def parse_filter(spec: Any) -> Where | None:
    """Validate a filter and build its tree; None (or `{}`) matches everything. Raises `InvalidFilter`."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise InvalidFilter(f"filter must be a JSON object, got {json_type(spec)}", param="filter")
    if not spec:
        return None
    return _object(spec, "filter", 0)


def _joined(parts: list[Where]) -> Where:
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _object(spec: dict[str, Any], where: str, depth: int) -> Where:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"{where} nests deeper than {MAX_DEPTH} levels", param="filter")
    if not spec:
        raise InvalidFilter(f"{where} is an empty object; give at least one condition", param="filter")
    parts: list[Where] = []
    for key, cond in spec.items():
        if key in ("$and", "$or"):
            parts.append(_logical(key, cond, f"{where}.{key}", depth))
        elif key.startswith("$"):
            raise InvalidFilter(f"{where}: unknown operator {key!r}; at this level use $and, $or or a metadata key")
        else:
            parts.append(_field(key, cond, f"{where}.{key}"))
    return _joined(parts)


def _logical(op: str, cond: Any, where: str, depth: int) -> Where:
    if not isinstance(cond, list) or not cond:
        raise InvalidFilter(f"{where} must be a non-empty array of filter objects", param="filter")
    parts = []
    for i, sub in enumerate(cond):
        if not isinstance(sub, dict):
            raise InvalidFilter(f"{where}[{i}] must be a filter object, got {json_type(sub)}", param="filter")
        parts.append(_object(sub, f"{where}[{i}]", depth + 1))
    return All(tuple(parts)) if op == "$and" else AnyOf(tuple(parts))


def _field(key: str, cond: Any, where: str) -> Where:
    if not key or '"' in key or "\\" in key:
        raise InvalidFilter(f"{where}: metadata key {key!r} must be non-empty and hold no quote or backslash")
    if not isinstance(cond, dict):
        return Equals(key, _scalar(cond, where))
    if not cond:
        raise InvalidFilter(f"{where} is an empty object; give an operator such as $eq or $in", param="filter")
    return _joined([_operator(key, op, arg, f"{where}.{op}") for op, arg in cond.items()])


def _operator(key: str, op: str, arg: Any, where: str) -> Where:
    if op == "$eq":
        return Equals(key, _scalar(arg, where))
    if op == "$ne":
        return Not(Equals(key, _scalar(arg, where)))
    if op in ("$in", "$nin"):
        member = OneOf(key, _values(arg, where))
        return member if op == "$in" else Not(member)
    if op == "$exists":
        if not isinstance(arg, bool):
            raise InvalidFilter(f"{where} takes true or false, got {json_type(arg)}", param="filter")
        return Exists(key) if arg else Not(Exists(key))
    if op in COMPARISONS:
        if isinstance(arg, bool) or not isinstance(arg, (int, float, str)):
            raise InvalidFilter(f"{where} compares with a number or a string, got {json_type(arg)}", param="filter")
        _scalar(arg, where)
        return Compare(key, op, arg)
    raise InvalidFilter(f"{where}: unknown operator; known: {', '.join(FIELD_OPS)}", param="filter")


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, (list, dict)):
        raise InvalidFilter(
            f"{where} compares with a {json_type(value)}; only strings, numbers, booleans and null compare"
            + (" (did you mean $in?)" if isinstance(value, list) else ""),
            param="filter",
        )
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise InvalidFilter(f"{where}: {value} is outside the 64-bit integer range", param="filter")
    return value


def _values(arg: Any, where: str) -> tuple[Scalar, ...]:
    if not isinstance(arg, list) or not arg:
        raise InvalidFilter(f"{where} takes a non-empty array of values, got {json_type(arg)}", param="filter")
    if len(arg) > MAX_IN_VALUES:
        raise InvalidFilter(f"{where} holds {len(arg)} values, over the limit of {MAX_IN_VALUES}", param="filter")
    return tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(arg))


# ---- the embedded engine's rendering: SQLite's JSON functions over the `metadata` TEXT column


@dataclass(frozen=True)
class Filter:
    """A compiled filter: `sql` is a boolean expression over the `metadata` column; `params` fill its `?`s."""

    sql: str
    params: tuple[Any, ...]


def compile_filter(spec: Any) -> Filter | None:
    """Validate a filter and render it for SQLite; None (or `{}`) matches everything. Raises `InvalidFilter`."""
    tree = parse_filter(spec)
    return None if tree is None else sqlite_filter(tree)


def sqlite_filter(tree: Where) -> Filter:
    """Render a filter tree as one SQLite boolean expression."""
    params: list[Any] = []
    return Filter(_sql(tree, params), tuple(params))


def _sql(node: Where, params: list[Any]) -> str:
    if isinstance(node, Equals):
        return _equals(_path(node.key), node.value, params)
    if isinstance(node, OneOf):
        return _member(_path(node.key), node.values, params)
    if isinstance(node, Exists):
        params.append(_path(node.key))
        return "(json_type(metadata, ?) IS NOT NULL)"
    if isinstance(node, Compare):
        path = _path(node.key)
        params.extend((path, path, node.value))
        return f"(json_type(metadata, ?) {_kind(node.value)} AND json_extract(metadata, ?) {COMPARISONS[node.op]} ?)"
    if isinstance(node, Not):
        if isinstance(node.inner, Exists):  # json_type is never NULL-and-NULL: no COALESCE needed
            params.append(_path(node.inner.key))
            return "(json_type(metadata, ?) IS NULL)"
        return f"NOT COALESCE({_sql(node.inner, params)}, 0)"
    joiner = " AND " if isinstance(node, All) else " OR "
    return "(" + joiner.join(_sql(part, params) for part in node.parts) + ")"


def _path(key: str) -> str:
    return f'$."{key}"'


def _kind(value: Any) -> str:
    """The SQL test on json_type() that a JSON value of this type passes."""
    if value is None:
        return "= 'null'"
    if isinstance(value, bool):
        return "= 'true'" if value else "= 'false'"
    if isinstance(value, str):
        return "= 'text'"
    return "IN ('integer', 'real')"


def _equals(path: str, value: Any, params: list[Any]) -> str:
    if value is None or isinstance(value, bool):
        params.append(path)
        return f"(json_type(metadata, ?) {_kind(value)})"
    params.extend((path, path, value))
    return f"(json_type(metadata, ?) {_kind(value)} AND json_extract(metadata, ?) = ?)"


def _member(path: str, values: tuple[Scalar, ...], params: list[Any]) -> str:
    # Grouped by JSON type so a long list is one IN (...) per type, not a deep chain of ORs.
    singles = dict.fromkeys(v for v in values if v is None or isinstance(v, bool))
    parts = [_equals(path, v, params) for v in singles]
    texts = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for group in (texts, numbers):
        if group:
            params.extend((path, path, *group))
            marks = ", ".join("?" * len(group))
            parts.append(f"(json_type(metadata, ?) {_kind(group[0])} AND json_extract(metadata, ?) IN ({marks}))")
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

"""Metadata filters: a small Mongo-like JSON language compiled to one SQLite WHERE clause.

`{"genre": "sci-fi", "year": {"$gte": 2000}, "lang": {"$in": ["en", "de"]}}` matches documents whose
top-level metadata has all of those. Values compare with their JSON type: `1` never matches `true` or
`"1"`. Compiling to SQL means one implementation decides what matches, for both the approximate and
the exact search paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidFilter
from gateway.schemas.common import json_type

MAX_IN_VALUES = 1024
MAX_DEPTH = 8
COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
FIELD_OPS = ("$eq", "$ne", "$in", "$nin", "$exists", *COMPARISONS)


@dataclass(frozen=True)
class Filter:
    """A compiled filter: `sql` is a boolean expression over the `metadata` column; `params` fill its `?`s."""

    sql: str
    params: tuple[Any, ...]


def compile_filter(spec: Any) -> Filter | None:
    """Validate a filter and compile it; None (or `{}`) matches everything. Raises `InvalidFilter`."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise InvalidFilter(f"filter must be a JSON object, got {json_type(spec)}", param="filter")
    if not spec:
        return None
    params: list[Any] = []
    sql = _object(spec, params, "filter", 0)
    return Filter(sql, tuple(params))


def _object(spec: dict[str, Any], params: list[Any], where: str, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"{where} nests deeper than {MAX_DEPTH} levels", param="filter")
    if not spec:
        raise InvalidFilter(f"{where} is an empty object; give at least one condition", param="filter")
    parts = []
    for key, cond in spec.items():
        if key in ("$and", "$or"):
            parts.append(_logical(key, cond, params, f"{where}.{key}", depth))
        elif key.startswith("$"):
            raise InvalidFilter(f"{where}: unknown operator {key!r}; at this level use $and, $or or a metadata key")
        else:
            parts.append(_field(key, cond, params, f"{where}.{key}"))
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _logical(op: str, cond: Any, params: list[Any], where: str, depth: int) -> str:
    if not isinstance(cond, list) or not cond:
        raise InvalidFilter(f"{where} must be a non-empty array of filter objects", param="filter")
    parts = []
    for i, sub in enumerate(cond):
        if not isinstance(sub, dict):
            raise InvalidFilter(f"{where}[{i}] must be a filter object, got {json_type(sub)}", param="filter")
        parts.append(_object(sub, params, f"{where}[{i}]", depth + 1))
    return "(" + f" {op[1:].upper()} ".join(parts) + ")"


def _field(key: str, cond: Any, params: list[Any], where: str) -> str:
    if not key or '"' in key or "\\" in key:
        raise InvalidFilter(f"{where}: metadata key {key!r} must be non-empty and hold no quote or backslash")
    path = f'$."{key}"'
    if not isinstance(cond, dict):
        return _equals(path, _scalar(cond, where), params)
    if not cond:
        raise InvalidFilter(f"{where} is an empty object; give an operator such as $eq or $in", param="filter")
    parts = [_operator(path, op, arg, params, f"{where}.{op}") for op, arg in cond.items()]
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _operator(path: str, op: str, arg: Any, params: list[Any], where: str) -> str:
    if op == "$eq":
        return _equals(path, _scalar(arg, where), params)
    if op == "$ne":
        return f"NOT COALESCE({_equals(path, _scalar(arg, where), params)}, 0)"
    if op in ("$in", "$nin"):
        clause = _member(path, _values(arg, where), params)
        return clause if op == "$in" else f"NOT COALESCE({clause}, 0)"
    if op == "$exists":
        if not isinstance(arg, bool):
            raise InvalidFilter(f"{where} takes true or false, got {json_type(arg)}", param="filter")
        params.append(path)
        return f"(json_type(metadata, ?) IS {'NOT ' if arg else ''}NULL)"
    if op in COMPARISONS:
        return _compare(path, COMPARISONS[op], arg, params, where)
    raise InvalidFilter(f"{where}: unknown operator; known: {', '.join(FIELD_OPS)}", param="filter")


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (list, dict)):
        raise InvalidFilter(
            f"{where} compares with a {json_type(value)}; only strings, numbers, booleans and null compare"
            + (" (did you mean $in?)" if isinstance(value, list) else ""),
            param="filter",
        )
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise InvalidFilter(f"{where}: {value} is outside the 64-bit integer range", param="filter")
    return value


def _values(arg: Any, where: str) -> list[Any]:
    if not isinstance(arg, list) or not arg:
        raise InvalidFilter(f"{where} takes a non-empty array of values, got {json_type(arg)}", param="filter")
    if len(arg) > MAX_IN_VALUES:
        raise InvalidFilter(f"{where} holds {len(arg)} values, over the limit of {MAX_IN_VALUES}", param="filter")
    return [_scalar(v, f"{where}[{i}]") for i, v in enumerate(arg)]


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


def _member(path: str, values: list[Any], params: list[Any]) -> str:
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


def _compare(path: str, sql_op: str, arg: Any, params: list[Any], where: str) -> str:
    if isinstance(arg, bool) or not isinstance(arg, (int, float, str)):
        raise InvalidFilter(f"{where} compares with a number or a string, got {json_type(arg)}", param="filter")
    _scalar(arg, where)
    params.extend((path, path, arg))
    return f"(json_type(metadata, ?) {_kind(arg)} AND json_extract(metadata, ?) {sql_op} ?)"

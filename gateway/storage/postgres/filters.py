"""A filter tree (`gateway.storage.filters.Where`) rendered for PostgreSQL over a `metadata jsonb` column.

Equality and membership are jsonb equality, which already compares by JSON type and numbers by value
(`'2005.0'::jsonb = '2005'::jsonb`, `'1'::jsonb <> '"1"'::jsonb`); equality is written as containment
(`metadata @> '{"k": v}'`) so the GIN index on `metadata` can answer it. Order comparisons test the
JSON type first, inside a CASE, because `AND` does not promise to evaluate its left side first and a
string cast to numeric would fail. Strings compare under the "C" collation: byte order of UTF-8, which is
code-point order, as SQLite's BINARY collation does in the embedded engine.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from gateway.storage.filters import All, AnyOf, Compare, Equals, Exists, Not, OneOf, Where

SQL_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def pg_filter(tree: Where) -> tuple[str, list[Any]]:
    """One boolean SQL expression over `metadata` and its parameters (psycopg `%s` placeholders)."""
    params: list[Any] = []
    return _sql(tree, params), params


def _sql(node: Where, params: list[Any]) -> str:
    if isinstance(node, Equals):
        params.append(Jsonb({node.key: node.value}))
        return "(metadata @> %s)"
    if isinstance(node, OneOf):
        params.extend((node.key, [Jsonb(v) for v in node.values]))
        return "((metadata -> %s) = ANY(%s::jsonb[]))"
    if isinstance(node, Exists):
        params.append(node.key)
        return "(metadata ? %s)"
    if isinstance(node, Compare):
        if isinstance(node.value, str):
            params.extend((node.key, node.key, node.value))
            test = f'(metadata ->> %s) COLLATE "C" {SQL_OPS[node.op]} %s'
            kind = "string"
        else:
            params.extend((node.key, node.key, node.value))
            test = f"(metadata -> %s)::numeric {SQL_OPS[node.op]} %s"
            kind = "number"
        return f"(CASE WHEN jsonb_typeof(metadata -> %s) = '{kind}' THEN {test} ELSE false END)"
    if isinstance(node, Not):
        return f"NOT COALESCE({_sql(node.inner, params)}, false)"
    joiner = " AND " if isinstance(node, All) else " OR "
    assert isinstance(node, (All, AnyOf))
    return "(" + joiner.join(_sql(part, params) for part in node.parts) + ")"

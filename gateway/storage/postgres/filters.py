"""A filter tree (`gateway.storage.filters.Where`) rendered for PostgreSQL over a `metadata jsonb` column.

Equality and membership are jsonb equality, which already compares by JSON type and numbers by value
(`'2005.0'::jsonb = '2005'::jsonb`, `'1'::jsonb <> '"1"'::jsonb`); equality is written as containment
(`metadata @> '{"k": v}'`) so the GIN index on `metadata` can answer it, and membership as containment of
any of the values (a bitmap OR over the GIN index) AND-ed with the exact equality that decides (up to
`INDEXED_IN_MAX` values; a longer list is the equality alone).
`indexable` says whether the GIN index can find a tree's matches without reading every row. Order comparisons test the
JSON type first, inside a CASE, because `AND` does not promise to evaluate its left side first and a
string cast to numeric would fail. Strings compare under the "C" collation: byte order of UTF-8, which is
code-point order, as SQLite's BINARY collation does in the embedded engine.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from gateway.storage.filters import All, AnyOf, Compare, Equals, Exists, Not, OneOf, Where

SQL_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# Past this many values a membership test is not offered to the GIN index. Each value is a lookup of
# its own (and jsonb_ops keeps a key and its values as separate entries, so each lookup also meets the
# entries of every row holding the key): at 50 values on 100,000 rows, counting the matches cost about
# 4x the HNSW search it was meant to spare (bench.postgres_filters, `in 5%`; 5 values: 9x faster).
INDEXED_IN_MAX = 8


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
        if len(node.values) > INDEXED_IN_MAX:
            return "((metadata -> %s) = ANY(%s::jsonb[]))"
        params.append([Jsonb({node.key: v}) for v in node.values])
        return "((metadata -> %s) = ANY(%s::jsonb[]) AND metadata @> ANY(%s::jsonb[]))"
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


def indexable(tree: Where) -> bool:
    """Whether the GIN index on `metadata` narrows the rows a tree can match (containment, key exists),
    so counting or listing its matches reads only those rows rather than the whole table."""
    if isinstance(tree, OneOf):
        return len(tree.values) <= INDEXED_IN_MAX
    if isinstance(tree, (Equals, Exists)):
        return True
    if isinstance(tree, All):
        return any(indexable(part) for part in tree.parts)
    if isinstance(tree, AnyOf):
        return all(indexable(part) for part in tree.parts)
    return False  # order comparisons and negations are tested row by row

"""Decoding untrusted input into the API's msgspec Structs, and msgspec's errors as messages that name the field.

msgspec checks types and constraints while it parses (no dict in between), stops at the first error
and says where (`$.documents[3].vector`). `explain` turns that into our words, e.g.
`documents[3].vector must hold numbers only, found boolean`, by reading the declared type at that path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import numpy as np
import orjson
from msgspec import inspect as mi

from gateway.errors import InvalidInput, InvalidJson
from shared.config import POOLINGS

T = TypeVar("T")

# The longest vector anything here takes: a collection's dimension, a given vector, OpenAI's `dimensions`.
MAX_DIMENSION = 1 << 16

Text = Annotated[str, msgspec.Meta(min_length=1)]
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Bounded in the schema (and by msgspec as it parses): a larger number would become infinity as float32.
Float32 = Annotated[
    float,
    msgspec.Meta(
        ge=-FLOAT32_MAX, le=FLOAT32_MAX, extra={"rule": "NaN, infinity and numbers beyond float32 are refused"}
    ),
]
Vector = Annotated[
    list[Float32],
    msgspec.Meta(min_length=1, max_length=MAX_DIMENSION, description="numbers that fit float32 (no NaN or infinity)"),
]


def given(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema clause: `field` is present and matches `schema` (so not null, where `schema` says so)."""
    return {"required": [field], "properties": {field: schema}}


def choices(*values: str) -> msgspec.Meta:
    """The Meta for a Literal: errors list its values in this order (msgspec sorts them)."""
    return msgspec.Meta(extra={"rule": "one of " + ", ".join(values)})


Pooling = Annotated[Literal["mean", "cls", "last"], choices(*POOLINGS)]
# Cohere's and Voyage's field: which of the model's prompts goes before the texts (GET /models shows them).
InputType = Annotated[
    Literal["query", "document"],
    choices("query", "document"),
    msgspec.Meta(description="put the model's query or document prompt before each text; default: no prompt"),
]


class ErrorDetail(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(description="stable machine-readable name, e.g. invalid_input")]
    message: Annotated[str, msgspec.Meta(description="what went wrong and what to change")]


class ErrorBody(msgspec.Struct):
    """Every error outside /v1/: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


def decode(raw: bytes, cls: type[T]) -> T:
    """A JSON body as `cls`; `InvalidJson` if it does not parse, `InvalidInput` naming the field otherwise."""
    try:
        return _decoder(cls).decode(raw)
    except msgspec.ValidationError as exc:
        return _with_integers(str(exc), cls, loads(raw))
    except msgspec.DecodeError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from None


_INT_GOT_FLOAT = re.compile(r"^Expected `int(?: \| null)?`, got `float` - at `\$(?P<path>[^`]*)`$")
# Each retry mends one number; a body with more integral floats than this is refused as before.
MAX_MENDED = 256


def _with_integers(message: str, cls: type[T], body: Any) -> T:
    """JSON has one number type: `164.0` is the integer 164, and JSON Schema's `integer` accepts it, but
    msgspec refuses a float where an int is declared. On that error only (so valid bodies pay nothing),
    each integral float msgspec points at becomes an int and the body is checked again; a fraction, or any
    other error, is refused in our words."""
    for _ in range(MAX_MENDED):
        found = _INT_GOT_FLOAT.match(message)
        if found is None:
            break
        tokens: list[str | int] = [n if n else int(i) for n, i in _TOKEN.findall(found.group("path"))]
        parent, key = _value_at(body, tokens[:-1]), tokens[-1] if tokens else None
        try:
            value = parent[key]
        except (LookupError, TypeError):
            break
        if not (isinstance(value, float) and value.is_integer() and abs(value) < 2**63):
            break
        parent[key] = int(value)
        try:
            return msgspec.convert(body, cls)
        except msgspec.ValidationError as exc:
            message = str(exc)
    raise explain(message, cls, body) from None


def validate(source: object, cls: type[T]) -> T:
    """An object's attributes (e.g. a proto message's view) as `cls`, by the same rules and messages as JSON."""
    try:
        return msgspec.convert(source, cls, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise explain(str(exc), cls, source) from None


def from_query(query: Mapping[str, str], cls: type[T]) -> T:
    """URL query parameters as `cls` ("5" → 5, "true"/"1" → True); unknown parameters are ignored."""
    try:
        return msgspec.convert(dict(query), cls, strict=False)
    except msgspec.ValidationError as exc:
        error = explain(str(exc), cls, dict(query))
        raise InvalidInput(f"query parameter {error.message}", param=error.param) from None


_DECODERS: dict[Any, Any] = {}


def _decoder(cls: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per type, made on first use (building one costs more than decoding a small body)."""
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
    return decoder


def loads(raw: bytes) -> Any:
    """The body as plain JSON, to quote the offending value in an error (only on the error path)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def string_field(raw: bytes, key: str) -> str | None:
    """A top-level string field of a body that may not have parsed (e.g. the model, to label a refusal)."""
    body = loads(raw) if raw else None
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def check_count(items: Sequence[Any], key: str, limit: int, knob: str) -> None:
    """A limit from the config (so not in the schema): at most `limit` items."""
    if len(items) > limit:
        raise InvalidInput(f"{key} holds {len(items)}, over the limit of {limit} per request ({knob})", param=key)


def float32_rows(vectors: Sequence[list[float]], keys: Sequence[str]) -> list[np.ndarray]:
    """Vectors as float32 rows, converted in one numpy call when they share a length; refuses what float32
    cannot hold (JSON has no NaN; numbers beyond ±3.4e38 would become infinity)."""
    if not vectors:
        return []
    if len({len(v) for v in vectors}) == 1:
        with np.errstate(over="ignore"):
            matrix = np.array(vectors, dtype=np.float32)
        rows = list(matrix)
    else:  # ragged: the collection will refuse the odd ones with the dimension it holds
        with np.errstate(over="ignore"):
            rows = [np.array(v, dtype=np.float32) for v in vectors]
        matrix = None
    finite = np.isfinite(matrix).all() if matrix is not None else all(np.isfinite(r).all() for r in rows)
    if not finite:
        i = next(i for i, r in enumerate(rows) if not np.isfinite(r).all())
        j = int(np.flatnonzero(~np.isfinite(rows[i]))[0])
        raise InvalidInput(
            f"{keys[i]}[{j}] is {vectors[i][j]!r}: NaN, infinity and numbers beyond float32 are refused",
            param=keys[i].rsplit(".", 1)[-1],
        )
    return rows


# -- msgspec's errors in our words -----------------------------------------------------------------

_WHERE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_GOT = {"int": "number", "float": "number", "str": "string", "bool": "boolean", "null": "null"}
_GOT.update(array="array", object="object")


@dataclass(frozen=True)
class _Spot:
    """Where msgspec stopped: the path, its declared type (and Meta extras), and the value found there."""

    tokens: list[str | int]
    declared: mi.Type
    meta: dict[str, Any]
    value: Any

    @property
    def here(self) -> str:
        return _name(self.tokens) or "request body"

    @property
    def param(self) -> str | None:
        return next((t for t in reversed(self.tokens) if isinstance(t, str)), None)

    def error(self, text: str) -> InvalidInput:
        return InvalidInput(f"{self.here} {text}", param=self.param)


def explain(message: str, cls: type, source: Any) -> InvalidInput:
    """msgspec's ValidationError text as an `InvalidInput` whose message and `param` name the field."""
    m = _WHERE.match(message)
    what, path = (m.group("what"), m.group("path") or "") if m else (message, "")
    tokens: list[str | int] = [name if name else int(index) for name, index in _TOKEN.findall(path)]
    spot = _Spot(tokens, *_type_at(mi.type_info(cls), tokens), _value_at(source, tokens))
    if found := re.match(r"Object contains unknown field `(.*)`", what):
        return _unknown_field(spot, found.group(1))
    if found := re.match(r"Object missing required field `(.*)`", what):
        field = found.group(1)
        described = _describe(*_type_at(spot.declared, [field]))
        return InvalidInput(f"{_name([*tokens, field])} is required: {described}", param=field)
    if found := re.match(r"Expected `([^`]*)`, got `([^`]*)`", what):
        got = _GOT.get(found.group(2), found.group(2))
        if tokens and isinstance(tokens[-1], int) and _is_numbers(_type_at(mi.type_info(cls), tokens[:-1])[0]):
            return InvalidInput(f"{_name(tokens[:-1])} must hold numbers only, found {got}", param=spot.param)
        return spot.error(f"must be {_describe(spot.declared, spot.meta)}, got {got}")
    if found := re.match(r"Expected `(array|str|object)` of length (>=|<=) (\d+)", what):
        return _length(spot, found.group(1), found.group(2), int(found.group(3)))
    if what.startswith(("Expected `str` matching regex", "Invalid enum value")):
        return spot.error(f"must be {_describe(spot.declared, spot.meta)}, got {spot.value!r}")
    if re.match(r"Expected `(int|float)` (>=|<=|>|<) ", what):
        if "rule" in spot.meta:
            return spot.error(f"is {spot.value!r}: {spot.meta['rule']}")
        return spot.error(f"must be between {_range(spot.declared)}, got {spot.value}")
    if what.startswith("Number out of range"):
        return spot.error("is a number beyond float32; numbers beyond float32 are refused")
    return InvalidInput(f"{spot.here}: {what}", param=spot.param)


def _unknown_field(spot: _Spot, first: str) -> InvalidInput:
    """Every unknown field of the object (msgspec names the first), and the allowed ones."""
    allowed = [f.encode_name for f in spot.declared.fields] if isinstance(spot.declared, mi.StructType) else []
    given = _keys(spot.value)
    unknown = sorted(set(given) - set(allowed)) if given else [first]
    listed = f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
    return InvalidInput(f"{spot.here} has unknown field(s) {listed}", param=unknown[0])


def _length(spot: _Spot, kind: str, op: str, n: int) -> InvalidInput:
    """A string or an array too short or too long."""
    if kind == "str":
        if op == ">=" and n == 1:
            return spot.error("is empty")
        return spot.error(f"must be {'at least' if op == '>=' else 'at most'} {n} characters")
    declared, meta = spot.declared, spot.meta
    if isinstance(declared, mi.UnionType):  # e.g. str | list[str]: the list is what has a length
        declared, meta = next(_unwrap(u) for u in declared.types if isinstance(_unwrap(u)[0], mi.ListType))
    if op == ">=":
        if noun := meta.get("noun"):
            return spot.error(f"must hold at least one {noun}")
        return spot.error(f"must be {_describe(declared, meta)}, got an empty array")
    size = len(spot.value) if isinstance(spot.value, list) else "more"
    return spot.error(f"holds {size} items, over the limit of {n}")


def _name(tokens: Sequence[str | int]) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


def _unwrap(t: mi.Type) -> tuple[mi.Type, dict[str, Any]]:
    """The type without its Meta and without `| None`; the Meta's `extra` and description merged."""
    meta: dict[str, Any] = {}
    while True:
        if isinstance(t, mi.Metadata):
            meta.update(t.extra or {})
            if t.extra_json_schema and "description" in t.extra_json_schema:
                meta.setdefault("description", t.extra_json_schema["description"])
            t = t.type
        elif isinstance(t, mi.UnionType):
            rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
            if len(rest) != 1:
                return mi.UnionType(tuple(rest)), meta
            t = rest[0]
        else:
            return t, meta


def _type_at(t: mi.Type, tokens: Sequence[str | int]) -> tuple[mi.Type, dict[str, Any]]:
    t, meta = _unwrap(t)
    for token in tokens:
        if isinstance(t, mi.StructType) and isinstance(token, str):
            field = next((f for f in t.fields if f.encode_name == token), None)
            if field is None:
                return mi.AnyType(), {}
            t, meta = _unwrap(field.type)
        elif isinstance(t, mi.ListType) and isinstance(token, int):
            t, meta = _unwrap(t.item_type)
        elif isinstance(t, mi.UnionType):  # e.g. str | list[str]: the list is what has items
            inner = next((u for u in t.types if isinstance(_unwrap(u)[0], mi.ListType)), None)
            if inner is None:
                return mi.AnyType(), {}
            t, meta = _type_at(inner, [token])
        else:
            return mi.AnyType(), {}
    return t, meta


def _describe(t: mi.Type, meta: dict[str, Any]) -> str:
    """What a value of this type is, in words ("a list of strings", "one of mean, cls, last")."""
    if "rule" in meta:
        return str(meta["rule"])
    if isinstance(t, mi.StrType):
        if t.pattern and (alternatives := re.fullmatch(r"\^\(([\w|]+)\)\$", t.pattern)):
            return "one of " + ", ".join(alternatives.group(1).split("|"))
        return "a string"
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.IntType):
        return "an integer"
    if isinstance(t, mi.FloatType):
        return "a number"
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(str(v) for v in t.values)
    if isinstance(t, (mi.DictType, mi.StructType)):
        return "a JSON object"
    if isinstance(t, mi.ListType):
        item, item_meta = _unwrap(t.item_type)
        if isinstance(item, mi.StrType) and not item.pattern:
            return "a list of strings"
        if isinstance(item, mi.FloatType):
            return ("a non-empty " if t.min_length else "an ") + "array of numbers"
        if isinstance(item, mi.StructType):
            return "an array of objects"
        return "an array of " + _describe(item, item_meta).removeprefix("one of ")
    if isinstance(t, mi.UnionType):
        return " or ".join(_describe(*_unwrap(u)) for u in t.types)
    return "a JSON value"


def _range(t: mi.Type) -> str:
    lo = getattr(t, "ge", None)
    hi = getattr(t, "le", None)
    return f"{lo} and {hi}" if lo is not None and hi is not None else f"{lo if lo is not None else '-inf'} and {hi}"


def _is_numbers(t: mi.Type) -> bool:
    return isinstance(t, mi.ListType) and isinstance(_unwrap(t.item_type)[0], mi.FloatType)


def _value_at(source: Any, tokens: Sequence[str | int]) -> Any:
    value = source
    for token in tokens:
        try:
            if isinstance(token, int):
                value = list(value)[token]
            elif isinstance(value, Mapping):
                value = value.get(token)
            else:
                value = getattr(value, token, None)
        except (IndexError, TypeError):
            return None
    return value


def _keys(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    return []

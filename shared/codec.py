"""Protocol structs ⇄ ZeroMQ frames. The only module that touches msgpack.

A message is two or three frames:

    [header: b"AK" + version byte + type byte] [body: msgpack map] [raw float32 rows, RESULT only]

The embeddings of a RESULT travel as one raw frame described by `dtype` and `shape` in the
body, read back with `np.frombuffer` (no copy, no per-float msgpack cost).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from shared.protocol import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    TYPE_OF,
    Job,
    Message,
    ModelInfo,
    MsgType,
    Result,
)

MAGIC = b"AK"
_FLOAT32 = "<f4"


class ProtocolError(Exception):
    """A frame that is not a valid message of our protocol version."""


def encode(msg: Message) -> list[bytes | memoryview]:
    """Frames for one message (without the ROUTER's identity frame)."""
    header = MAGIC + bytes((PROTOCOL_VERSION, TYPE_OF[type(msg)]))
    if isinstance(msg, Result):
        rows = np.ascontiguousarray(msg.embeddings, dtype=_FLOAT32)
        body = {
            "job_id": msg.job_id,
            "dtype": "float32",
            "shape": list(rows.shape),
            "token_counts": list(msg.token_counts),
            "input_tokens": list(msg.input_tokens),
            "compute_ms": msg.compute_ms,
        }
        # memoryview.cast refuses a zero in the shape; an empty result is an empty frame, and
        # `shape` in the body restores (0, d) or (n, 0) on the other side.
        payload = rows.data.cast("B") if rows.size else b""
        return [header, msgpack.packb(body), payload]
    return [header, msgpack.packb(_to_plain(msg))]


def decode(frames: Sequence[bytes | memoryview | Any]) -> Message:
    """Parse frames into a message, or raise `ProtocolError` saying what is wrong."""
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames, got {len(frames)}")
    header = bytes(frames[0])
    if len(header) != 4 or header[:2] != MAGIC:
        raise ProtocolError(f"bad header {header[:8]!r}")
    if header[2] != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {header[2]}, this side speaks {PROTOCOL_VERSION}")
    try:
        msg_type = MsgType(header[3])
    except ValueError:
        raise ProtocolError(f"unknown message type {header[3]}") from None
    try:
        body = msgpack.unpackb(bytes(frames[1]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"body is not msgpack: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"body must be a map, got {type(body).__name__}")
    if msg_type is MsgType.RESULT:
        return _decode_result(body, frames[2:])
    if len(frames) != 2:
        raise ProtocolError(f"{msg_type.name} takes 2 frames, got {len(frames)}")
    msg = typing.cast(Message, _build(MESSAGE_TYPES[msg_type], body))
    if isinstance(msg, Job):
        _check_pairs(msg)
    return msg


def _check_pairs(job: Job) -> None:
    """A rerank job names one query per document, each an index into `queries`."""
    if not job.queries and not job.query_of:
        return
    if len(job.query_of) != len(job.texts):
        raise ProtocolError(f"JOB query_of has {len(job.query_of)} entries for {len(job.texts)} texts")
    if not job.queries or any(not 0 <= q < len(job.queries) for q in job.query_of):
        raise ProtocolError(f"JOB query_of must index its {len(job.queries)} queries")


def _decode_result(body: dict[str, Any], extra: Sequence[Any]) -> Result:
    if len(extra) != 1:
        raise ProtocolError(f"RESULT takes 3 frames, got {len(extra) + 2}")
    if body.get("dtype") != "float32":
        raise ProtocolError(f"RESULT dtype must be float32, got {body.get('dtype')!r}")
    shape = body.get("shape")
    if not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ProtocolError(f"RESULT shape must be [rows, dimension], got {shape!r}")
    raw = extra[0]
    buffer = raw.buffer if hasattr(raw, "buffer") else raw  # a zmq.Frame from copy=False
    rows = np.frombuffer(buffer, dtype=_FLOAT32)
    if rows.size != shape[0] * shape[1]:
        raise ProtocolError(f"RESULT holds {rows.size} floats, shape says {shape}")
    fields = {k: v for k, v in body.items() if k not in ("dtype", "shape")}
    fields["embeddings"] = rows.reshape(shape)
    result = _build(Result, fields)
    if not len(result.token_counts) == len(result.input_tokens) == shape[0]:
        raise ProtocolError("RESULT token_counts and input_tokens must have one entry per row")
    return typing.cast(Result, result)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        # A field at its default stays off the wire (the decoder fills it in), so a field added
        # later with a default reaches an older peer only when it is used: see protocol.md, Versioning.
        return {
            f.name: _to_plain(value)
            for f in dataclasses.fields(obj)
            if (value := getattr(obj, f.name)) != f.default  # a required field's default is MISSING
        }
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type, body: dict[str, Any]) -> Any:
    """Construct `cls` from a map, checking every field's type; unknown keys are an error."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(body) - set(known)
    if unknown:
        raise ProtocolError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    hints = _hints(cls)
    kwargs = {}
    for name, f in known.items():
        if name not in body:
            if f.default is dataclasses.MISSING:
                raise ProtocolError(f"{cls.__name__} is missing field {name!r}")
            continue
        if hints[name] is np.ndarray:
            kwargs[name] = body[name]
            continue
        kwargs[name] = _check(hints[name], body[name], f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _check(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ProtocolError(f"{where} must be a list, got {type(value).__name__}")
        (item_hint, _ellipsis) = typing.get_args(hint)
        return tuple(_check(item_hint, v, f"{where}[]") for v in value)
    if hint is ModelInfo:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where} must be a map")
        return _build(ModelInfo, value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ProtocolError(f"{where} must be int, got bool")
    if not isinstance(value, hint):
        raise ProtocolError(f"{where} must be {hint.__name__}, got {type(value).__name__}")
    return value

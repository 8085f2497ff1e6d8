"""Protocol structs survive the wire, and anything malformed becomes one ProtocolError."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from shared.codec import MAGIC, ProtocolError, decode, encode
from shared.protocol import (
    PROTOCOL_VERSION,
    Disconnect,
    Error,
    ErrorCode,
    Heartbeat,
    Job,
    ModelInfo,
    MsgType,
    Ready,
    Result,
)

READY = Ready(
    worker_id="mac-1",
    models=(ModelInfo("all-MiniLM-L6-v2", 384, 256, "mean", ("minilm",), "mlx", "metal", "f32"),),
    device="metal",
    capacity=2,
    host="mac",
    pid=42,
)


@pytest.mark.parametrize(
    "msg",
    [
        READY,
        Heartbeat(),
        Job(7, "all-MiniLM-L6-v2", ("a", "b c"), "mean", True, 30_000),
        Job(8, "qwen3-0.6b-4bit", ("a",), "last", False, 1, prompt="Instruct: x\nQuery: "),
        Job(9, "tiny-reranker", ("d0", "d1", "d2"), "", False, 500, queries=("q0", "q1"), query_of=(0, 1, 1)),
        Ready("w", (ModelInfo("q", 64, 8192, "last", query_prompt="Query: ", document_prompt="Doc: "),), "cpu", 1),
        Ready("w", (ModelInfo("tiny-reranker", 1, 512, "cls", kind="rerank"),), "cpu", 1),
        Error(7, ErrorCode.INTERNAL, "boom"),
        Disconnect("bye"),
    ],
)
def test_round_trip(msg: object) -> None:
    assert decode(encode(msg)) == msg  # type: ignore[arg-type]


def _body(msg: object) -> dict[str, object]:
    return dict(msgpack.unpackb(encode(msg)[1]))  # type: ignore[arg-type]


def test_fields_at_their_default_stay_off_the_wire() -> None:
    """A JOB without a prompt and a model without prompts are the maps older peers know, so they still decode."""
    job = _body(Job(7, "m", ("a",), "mean", False, 1))
    assert set(job) == {"job_id", "model", "texts", "pooling", "normalize", "deadline_ms"}
    assert job["normalize"] is False  # a required field is always sent, whatever its value
    ready = _body(READY)
    assert set(ready["models"][0]) == {
        "name",
        "dimension",
        "max_tokens",
        "pooling",
        "aliases",
        "backend",
        "device",
        "precision",
    }  # type: ignore[index]
    assert _body(Job(7, "m", ("a",), "mean", True, 1, prompt="Q: "))["prompt"] == "Q: "
    reranker = Ready("w", (ModelInfo("r", 1, 512, "cls", kind="rerank"),), "cpu", 1)
    assert _body(reranker)["models"][0]["kind"] == "rerank"  # type: ignore[index]


def test_a_ready_from_before_kind_decodes_as_an_embedding_model() -> None:
    """A worker that never announces `kind` (the map older peers send) serves an embedding model."""
    back = decode(encode(READY))
    assert isinstance(back, Ready) and back.models[0].kind == "embed"


def test_result_rows_travel_as_one_raw_frame() -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    frames = encode(Result(1, rows, (3, 4, 5), (3, 9, 5), 1.5))
    assert len(frames) == 3 and bytes(frames[2]) == rows.tobytes()
    back = decode(frames)
    assert isinstance(back, Result)
    np.testing.assert_array_equal(back.embeddings, rows)
    assert back.token_counts == (3, 4, 5) and back.input_tokens == (3, 9, 5) and back.compute_ms == 1.5


@pytest.mark.parametrize("shape", [(0, 384), (3, 0), (0, 0)])
def test_empty_results_round_trip_with_their_shape(shape: tuple[int, int]) -> None:
    rows = np.zeros(shape, dtype=np.float32)
    counts = (1,) * shape[0]
    frames = encode(Result(2, rows, counts, counts, 0.0))
    assert len(frames) == 3 and bytes(frames[2]) == b""
    back = decode(frames)
    assert isinstance(back, Result)
    assert back.embeddings.shape == shape and back.embeddings.dtype == np.float32
    assert back.token_counts == counts


def _frames(msg_type: MsgType, body: object, version: int = PROTOCOL_VERSION) -> list[bytes]:
    return [MAGIC + bytes((version, msg_type)), msgpack.packb(body)]


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        ([b"AK"], "at least 2 frames"),
        ([b"XX\x01\x02", msgpack.packb({})], "bad header"),
        (_frames(MsgType.HEARTBEAT, {}, version=99), "protocol version 99"),
        ([MAGIC + bytes((PROTOCOL_VERSION, 77)), msgpack.packb({})], "unknown message type"),
        ([MAGIC + bytes((PROTOCOL_VERSION, MsgType.JOB)), b"\xc1"], "not msgpack"),
        (_frames(MsgType.JOB, [1, 2]), "must be a map"),
        (_frames(MsgType.JOB, {"job_id": 1}), "missing field"),
        (
            _frames(
                MsgType.JOB,
                {"job_id": "x", "model": "m", "texts": [], "pooling": "mean", "normalize": True, "deadline_ms": 1},
            ),
            "must be int",
        ),
        (
            _frames(
                MsgType.JOB,
                {"job_id": True, "model": "m", "texts": [], "pooling": "mean", "normalize": True, "deadline_ms": 1},
            ),
            "got bool",
        ),
        (
            _frames(
                MsgType.JOB,
                {"job_id": 1, "model": "m", "texts": "abc", "pooling": "mean", "normalize": True, "deadline_ms": 1},
            ),
            "must be a list",
        ),
        (_frames(MsgType.DISCONNECT, {"reason": "x", "extra": 1}), "no field"),
        (_frames(MsgType.READY, {"worker_id": "w", "models": ["x"], "device": "cpu", "capacity": 1}), "must be a map"),
        ([*_frames(MsgType.HEARTBEAT, {}), b"extra"], "takes 2 frames"),
        (
            _frames(
                MsgType.RESULT,
                {
                    "job_id": 1,
                    "dtype": "float32",
                    "shape": [1, 1],
                    "token_counts": [1],
                    "input_tokens": [1],
                    "compute_ms": 1.0,
                },
            ),
            "takes 3 frames",
        ),
    ],
)
def test_malformed_frames_raise_protocol_error(frames: list[bytes], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(frames)


def _result_frames(shape: object, payload: bytes, dtype: str = "float32", counts: int = 2) -> list[bytes]:
    body = {
        "job_id": 1,
        "dtype": dtype,
        "shape": shape,
        "token_counts": [1] * counts,
        "input_tokens": [1] * counts,
        "compute_ms": 0.5,
    }
    return [*_frames(MsgType.RESULT, body), payload]


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        (_result_frames([2, 2], b"\0" * 16, dtype="float64"), "dtype"),
        (_result_frames([2], b"\0" * 8), "shape"),
        (_result_frames([2, 2], b"\0" * 12), "holds 3 floats"),
        (_result_frames([2, 2], b"\0" * 16, counts=3), "one entry per row"),
    ],
)
def test_malformed_results_raise_protocol_error(frames: list[bytes], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(frames)


def test_a_rerank_job_names_each_pair_by_its_query() -> None:
    job = decode(encode(Job(9, "r", ("d0", "d1"), "", False, 1, queries=("q",), query_of=(0, 0))))
    assert isinstance(job, Job) and job.is_rerank
    assert job.pairs() == [("q", "d0"), ("q", "d1")]


def _job_frames(**fields: object) -> list[bytes]:
    body = {"job_id": 1, "model": "r", "texts": ["a", "b"], "pooling": "", "normalize": False, "deadline_ms": 1}
    return _frames(MsgType.JOB, {**body, **fields})


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        (_job_frames(queries=["q"], query_of=[0]), "1 entries for 2 texts"),
        (_job_frames(queries=["q"], query_of=[0, 1]), "must index its 1 queries"),
        (_job_frames(queries=["q"], query_of=[0, -1]), "must index"),
        (_job_frames(query_of=[0, 0]), "must index its 0 queries"),
        (_job_frames(queries=["q"]), "0 entries for 2 texts"),
        (_job_frames(queries=["q"], query_of=["0", "0"]), "must be int"),
    ],
)
def test_malformed_rerank_jobs_raise_protocol_error(frames: list[bytes], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(frames)

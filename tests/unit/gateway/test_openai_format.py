"""OpenAI request parsing (schemas/openai.py), `dimensions` policy and shortening, base64, the error body."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from gateway.api.openai_format import check_dimensions, embeddings_body, error_body, shorten, to_base64
from gateway.api.schemas.openai import TOKEN_IDS_REFUSED, EmbeddingsBody, parse
from gateway.errors import DimensionMismatch, InvalidInput, ModelNotFound, NoWorker
from shared.protocol import ModelInfo

MINILM = ModelInfo("all-MiniLM-L6-v2", 384, 256, "mean")
QWEN3 = ModelInfo("qwen3-embedding-0.6b", 1024, 8192, "last")
CUSTOM = ModelInfo("my-own-model", 768, 512, "mean")


def parse_request(body: object, max_texts: int) -> EmbeddingsBody:
    parsed = parse(orjson.dumps(body))
    parsed.to_request(max_texts)
    return parsed


def test_one_string_or_a_list() -> None:
    assert parse_request({"input": "hi", "model": "m"}, 10).to_request(10).texts == ("hi",)
    body = parse_request({"input": ["a", "b"], "model": "m", "user": "u1"}, 10)
    req = body.to_request(10)
    assert (req.texts, req.model, req.normalize) == (("a", "b"), "m", True)
    assert (body.encoding_format or "float", body.dimensions) == ("float", None)
    body = parse_request({"input": "a", "model": "m", "encoding_format": "base64", "dimensions": 64}, 10)
    assert (body.encoding_format, body.dimensions) == ("base64", 64)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": "a"}, "model", "model is required"),
        ({"model": "m"}, "input", "input is required"),
        ({"input": 3, "model": "m"}, "input", "got number"),
        ({"input": [], "model": "m"}, "input", "at least one"),
        ({"input": ["a", ""], "model": "m"}, "input", "input[1] is empty"),
        ({"input": ["a", "b", "c"], "model": "m"}, "input", "over the limit of 2"),
        ({"input": "a", "model": "m", "encoding_format": "int8"}, "encoding_format", "float, base64"),
        ({"input": "a", "model": "m", "dimensions": 0}, "dimensions", "between 1"),
        ({"input": "a", "model": "m", "dimensions": "64"}, "dimensions", "integer"),
        ({"input": "a", "model": "m", "user": 7}, "user", "string"),
        ({"input": "a", "model": "m", "texts": ["a"]}, "texts", "unknown field"),
    ],
)
def test_bad_bodies_name_the_field(body: dict, param: str, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput) as err:
        parse_request(body, 2)
    assert err.value.param == param
    assert words in err.value.message


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
def test_token_id_inputs_are_refused_with_a_way_out(tokens: list) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput) as err:
        parse_request({"input": tokens, "model": "m"}, 10)
    assert err.value.message == TOKEN_IDS_REFUSED
    assert "check_embedding_ctx_length=False" in err.value.message


def test_dimensions_policy() -> None:
    for info in (MINILM, QWEN3, CUSTOM):
        check_dimensions(None, info)
        check_dimensions(info.dimension, info)  # the full size is always fine
    check_dimensions(256, QWEN3)
    check_dimensions(32, QWEN3)
    for info, dims, words in [
        (MINILM, 128, "not trained Matryoshka-style"),
        (CUSTOM, 256, "not trained Matryoshka-style"),
        (MINILM, 385, "over 'all-MiniLM-L6-v2''s 384"),
        (QWEN3, 16, "between 32 and 1024"),
        (QWEN3, 2048, "over"),
    ]:
        with pytest.raises(DimensionMismatch) as err:  # 400 dimension_mismatch, as the seed API specifies
            check_dimensions(dims, info)
        assert words in err.value.message and err.value.param == "dimensions"


def test_shorten_truncates_then_renormalises() -> None:
    rng = np.random.default_rng(0)
    full = rng.standard_normal((3, 1024)).astype(np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    short = shorten(full, 256)
    assert short.shape == (3, 256) and short.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    # Same direction as the first 256 components: only the length changed.
    cos = np.sum(short * full[:, :256], axis=1) / np.linalg.norm(full[:, :256], axis=1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)
    assert shorten(full, None) is full and shorten(full, 1024) is full


def test_base64_is_little_endian_float32() -> None:
    row = np.array([1.0, -2.5, 0.125], dtype=np.float32)
    raw = base64.b64decode(to_base64(row))
    assert raw == b"\x00\x00\x80\x3f" + b"\x00\x00\x20\xc0" + b"\x00\x00\x00\x3e"
    np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4"), row)
    # A big-endian or float64 input still goes out as little-endian float32.
    assert to_base64(row.astype(">f4")) == to_base64(row) == to_base64(row.astype(np.float64))


def test_embeddings_body_shape() -> None:
    vectors = np.eye(2, dtype=np.float32)
    body = embeddings_body(vectors, "m", 5, "base64")
    assert body["object"] == "list" and body["model"] == "m"
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert body["data"][1]["embedding"] == to_base64(vectors[1])
    assert embeddings_body(vectors, "m", 5, "float")["data"][0]["embedding"] is not None


def test_error_body_is_openais_shape() -> None:
    body = error_body(ModelNotFound("model 'x' is not served here", param="model"))
    assert body == {
        "error": {
            "message": "model 'x' is not served here",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert error_body(NoWorker("none"))["error"]["type"] == "server_error"
    assert error_body(InvalidInput("bad"))["error"]["param"] is None

"""Proto ⇄ embedding-path mapping: presence of `normalize`, empty strings as unset, REST's messages."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from gateway.api.rpc.convert import to_embed_request, to_embedding_response, to_model_info_response
from gateway.api.schemas.common import decode
from gateway.api.schemas.embed import EmbedBody
from gateway.errors import InvalidInput
from gateway.services.embedding import EmbedOutcome
from shared.proto import embedding_pb2 as pb
from shared.protocol import ModelInfo

MINILM = ModelInfo("all-MiniLM-L6-v2", 384, 256, "mean")


def test_unset_normalize_means_the_default_and_only_an_explicit_false_turns_it_off() -> None:
    # None: the service applies embedding.normalize (true unless the operator changed it).
    assert to_embed_request(pb.EmbeddingRequest(texts=["a"]), 10).normalize is None
    assert to_embed_request(pb.EmbeddingRequest(texts=["a"], normalize=True), 10).normalize is True
    assert to_embed_request(pb.EmbeddingRequest(texts=["a"], normalize=False), 10).normalize is False


def test_normalize_presence_survives_the_wire() -> None:
    unset = pb.EmbeddingRequest.FromString(pb.EmbeddingRequest(texts=["a"]).SerializeToString())
    false = pb.EmbeddingRequest.FromString(pb.EmbeddingRequest(texts=["a"], normalize=False).SerializeToString())
    assert not unset.HasField("normalize")
    assert false.HasField("normalize") and false.normalize is False


def test_empty_model_and_pooling_mean_the_defaults() -> None:
    req = to_embed_request(pb.EmbeddingRequest(texts=["a", "b"]), 10)
    assert (req.texts, req.model, req.pooling, req.truncate) == (("a", "b"), None, None, True)
    req = to_embed_request(pb.EmbeddingRequest(texts=["a"], model="minilm", pooling="cls"), 10)
    assert (req.model, req.pooling) == ("minilm", "cls")


@pytest.mark.parametrize(
    ("msg", "body"),
    [
        (pb.EmbeddingRequest(), {"texts": []}),
        (pb.EmbeddingRequest(texts=["a", ""]), {"texts": ["a", ""]}),
        (pb.EmbeddingRequest(texts=["a"], pooling="max"), {"texts": ["a"], "pooling": "max"}),
        (pb.EmbeddingRequest(texts=["a", "b", "c"]), {"texts": ["a", "b", "c"]}),
    ],
)
def test_invalid_requests_fail_with_the_same_message_as_rest(msg: pb.EmbeddingRequest, body: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput) as grpc_error:
        to_embed_request(msg, 2)
    with pytest.raises(InvalidInput) as rest_error:
        decode(orjson.dumps(body), EmbedBody).to_request(2)
    assert grpc_error.value.message == rest_error.value.message


def test_response_carries_each_row_model_dimension_and_usage() -> None:
    vectors = np.arange(2 * 384, dtype=np.float32).reshape(2, 384) / 1000
    resp = to_embedding_response(EmbedOutcome(vectors, [4, 6], MINILM, 7))
    back = pb.EmbeddingResponse.FromString(resp.SerializeToString())
    got = np.array([e.values for e in back.embeddings], dtype=np.float32)
    np.testing.assert_array_equal(got, vectors)  # proto floats are float32: nothing is lost
    assert (back.model, back.dimension) == ("all-MiniLM-L6-v2", 384)
    assert (back.usage.total_tokens, back.usage.duration_ms) == (10, 7)


def test_model_info_response() -> None:
    resp = to_model_info_response(MINILM)
    assert (resp.model, resp.dimension, resp.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    assert (resp.query_prompt, resp.document_prompt) == ("", "")
    resp = to_model_info_response(ModelInfo("q", 64, 8192, "last", query_prompt="Query: "))
    assert (resp.query_prompt, resp.document_prompt) == ("Query: ", "")


def test_input_type_is_optional_and_checked_as_rest_checks_it() -> None:
    assert to_embed_request(pb.EmbeddingRequest(texts=["a"]), 10).input_type is None
    assert to_embed_request(pb.EmbeddingRequest(texts=["a"], input_type=""), 10).input_type is None
    assert to_embed_request(pb.EmbeddingRequest(texts=["a"], input_type="query"), 10).input_type == "query"
    # An old client's bytes (no field 5) still parse: the field is new and optional.
    old = pb.EmbeddingRequest.FromString(pb.EmbeddingRequest(texts=["a"], model="m").SerializeToString())
    assert not old.HasField("input_type")
    with pytest.raises(InvalidInput) as grpc_error:
        to_embed_request(pb.EmbeddingRequest(texts=["a"], input_type="search_query"), 10)
    with pytest.raises(InvalidInput) as rest_error:
        decode(orjson.dumps({"texts": ["a"], "input_type": "search_query"}), EmbedBody).to_request(10)
    assert grpc_error.value.message == rest_error.value.message
    assert "input_type" in rest_error.value.message and "query, document" in rest_error.value.message

"""The model registry: names, aliases, and each model's query and document prompts."""

from __future__ import annotations

import pytest

from shared import models


def test_minilm_is_symmetric() -> None:
    spec = models.find("minilm")
    assert spec is not None and (spec.query_prompt, spec.document_prompt) == ("", "")


@pytest.mark.parametrize("name", ["qwen3-0.6b-4bit", "Qwen/Qwen3-Embedding-0.6B"])
def test_qwen3_carries_its_model_cards_query_instruction(name: str) -> None:
    spec = models.find(name)
    assert spec is not None
    assert spec.query_prompt == (
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
    )
    assert spec.document_prompt == ""  # the card embeds documents as they are


def test_find_and_canonical_ignore_case_and_know_aliases() -> None:
    assert models.canonical("SENTENCE-TRANSFORMERS/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert models.canonical("my-own-model") == "my-own-model"
    assert models.find("nope") is None


def test_embedding_models_are_kind_embed_by_default() -> None:
    assert {spec.kind for spec in models.REGISTRY if spec not in models.RERANKERS} == {"embed"}


@pytest.mark.parametrize(
    ("name", "repo_id", "family"),
    [
        ("cross-encoder/ms-marco-MiniLM-L-6-v2", "cross-encoder/ms-marco-MiniLM-L-6-v2", "bert"),
        ("bge-reranker-base", "BAAI/bge-reranker-base", "xlm-roberta"),
        ("BAAI/bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3", "xlm-roberta"),
        ("qwen3-reranker-0.6b", "Qwen/Qwen3-Reranker-0.6B", "qwen3"),
    ],
)
def test_rerankers_are_registered_with_kind_rerank(name: str, repo_id: str, family: str) -> None:
    spec = models.find(name)
    assert spec is not None and spec in models.RERANKERS
    assert (spec.kind, spec.repo_id, spec.family) == ("rerank", repo_id, family)
    assert spec.max_tokens == (8192 if family == "qwen3" else 512)

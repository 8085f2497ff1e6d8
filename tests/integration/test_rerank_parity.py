"""Both backends' cross-encoders against transformers (AutoModelForSequenceClassification, causal LM), on 200 pairs.

The fixtures are tiny random-weight BERT and XLM-R sequence classifiers and a Qwen3 causal LM
with the real architectures and tokenizer templates (tests/fixtures/make_tiny_rerankers.py),
scored by transformers (Qwen3 as its Qwen3-Reranker model card scores: yes/no logits after
the prompt); a fifth of the documents run far past 512 tokens, so truncation from the document
side is held to the reference's too. The scoring core is not wired into the worker's
protocol yet, so the backends run in-process on the real engines and the real files on disk.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shared.config import Config, EmbeddingConfig
from tests.support import references as refs
from worker.backends.select import build_reranker
from worker.loader import locate
from worker.reranker import Scored, sigmoid

REF = refs.load("tiny_rerank_reference")
PAIRS = list(zip(REF["queries"].tolist(), REF["documents"].tolist(), strict=True))
MAX_SCORE_DIFF = 1e-3  # the bar, on sigmoid scores


# Registry names the fixtures stand in for: Qwen3's folder is a plain Qwen3ForCausalLM, a reranker
# only by its registry entry (its prompt and yes/no scoring), so it is served under that name.
NAMES = {"bert": "tiny-bert", "xlmr": "tiny-xlmr", "qwen3": "qwen3-reranker-0.6b"}


@pytest.fixture(scope="module", params=sorted(refs.TINY_RERANKERS))
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def scored(model: str, backend: str) -> Scored:
    """The 200 pairs scored once per model and backend, at f32 as the reference was, cut at 512 tokens."""
    if model == "qwen3" and backend != "mlx":
        pytest.skip("Qwen3-Reranker runs on MLX only")
    folder = str(refs.TINY_RERANKERS[model])
    embedding = replace(EmbeddingConfig(), model_name=NAMES[model], model_path=folder, precision="f32", max_tokens=512)
    source = locate(embedding)
    assert source.kind == "rerank"
    reranker = build_reranker(backend, source, replace(Config(), embedding=embedding))
    assert (reranker.model.backend, reranker.model.precision) == (backend, "f32")
    return reranker.score(PAIRS)


def test_sigmoid_scores_match_transformers(model: str, scored: Scored) -> None:
    got, want = sigmoid(scored.logits), REF[f"{model}_scores"]
    worst = int(np.abs(got - want).argmax())
    assert abs(got[worst] - want[worst]) <= MAX_SCORE_DIFF, f"pairs[{worst}]: {got[worst]:.6f} vs {want[worst]:.6f}"
    # Raw logits too: a sigmoid saturated near 0 or 1 would hide a wrong logit.
    np.testing.assert_allclose(scored.logits, REF[f"{model}_logits"], atol=1e-3, rtol=0)


def test_every_querys_documents_rank_as_transformers_ranks_them(model: str, scored: Scored) -> None:
    per_query = refs.RERANK_DOCS_PER_QUERY
    got = scored.logits.reshape(-1, per_query)
    want = REF[f"{model}_logits"].reshape(-1, per_query)
    for q, (g, w) in enumerate(zip(got, want, strict=True)):
        assert np.argsort(-g).tolist() == np.argsort(-w).tolist(), f"query {q}: the documents rank differently"


def test_pairs_of_different_queries_order_as_transformers_orders_them(model: str, scored: Scored) -> None:
    """Across all 200 pairs, every two whose reference logits differ by more than float noise keep their order.

    Random-weight fixtures put some of the 19,900 pairs of pairs within 1e-5 of each other (BERT's
    closest: 7e-6), where f32 on another device (Metal) may legitimately swap them.
    """
    want = REF[f"{model}_logits"].astype(np.float64)
    got = scored.logits.astype(np.float64)
    apart = np.abs(want[:, None] - want[None, :]) > 1e-4
    same = np.sign(got[:, None] - got[None, :]) == np.sign(want[:, None] - want[None, :])
    assert apart.sum() > 0.99 * want.size * (want.size - 1)
    assert same[apart].all(), f"{int((~same[apart]).sum()) // 2} pairs of pairs swap"


def test_pairs_are_cut_from_the_document_and_counted_as_transformers_counts(model: str, scored: Scored) -> None:
    assert scored.token_counts == REF[f"{model}_token_counts"].tolist()
    assert scored.input_tokens == REF[f"{model}_input_tokens"].tolist()
    assert max(scored.token_counts) == 512
    assert scored.truncated == int((REF[f"{model}_input_tokens"] > 512).sum()) >= 20

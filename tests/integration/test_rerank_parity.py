"""Both backends' cross-encoders against transformers' AutoModelForSequenceClassification, on 200 pairs.

The fixtures are tiny random-weight BERT and XLM-R sequence classifiers with the real
architectures and tokenizer templates (tests/fixtures/make_tiny_rerankers.py); a quarter of
the documents run far past 512 tokens, so truncation from the document side is held to
transformers' `truncation="only_second"` too. The scoring core is not wired into the worker's
protocol yet, so the backends run in-process on the real engines and the real files on disk.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shared.config import Config, EmbeddingConfig
from tests.support import references as refs
from worker.backends.select import build_cross_encoder
from worker.loader import locate
from worker.pairs import PairTokenizer
from worker.reranker import Reranker, Scored, sigmoid

REF = refs.load("tiny_rerank_reference")
PAIRS = list(zip(REF["queries"].tolist(), REF["documents"].tolist(), strict=True))
MAX_SCORE_DIFF = 1e-3  # the bar, on sigmoid scores


@pytest.fixture(scope="module", params=sorted(refs.TINY_RERANKERS))
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def scored(model: str, backend: str) -> Scored:
    """The 200 pairs scored once per model and backend, at f32 as the reference was."""
    folder = str(refs.TINY_RERANKERS[model])
    embedding = replace(EmbeddingConfig(), model_name=model, model_path=folder, precision="f32")
    source = locate(embedding)
    assert source.kind == "rerank"
    cross = build_cross_encoder(backend, source, replace(Config(), embedding=embedding))
    assert (cross.backend, cross.precision) == (backend, "f32")
    reranker = Reranker(source, PairTokenizer.from_folder(source.path, source.max_tokens), cross, batch_size=32)
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
    assert np.argsort(-scored.logits).tolist() == np.argsort(-REF[f"{model}_logits"]).tolist()


def test_pairs_are_cut_from_the_document_and_counted_as_transformers_counts(model: str, scored: Scored) -> None:
    assert scored.token_counts == REF[f"{model}_token_counts"].tolist()
    assert scored.input_tokens == REF[f"{model}_input_tokens"].tolist()
    assert max(scored.token_counts) == 512
    assert scored.truncated == int((REF[f"{model}_input_tokens"] > 512).sum()) >= 20

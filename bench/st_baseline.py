"""sentence-transformers' in-process speed and vectors: the baseline, run in the fixture venv only.

    .fixture-venv/bin/python -m bench.st_baseline --n-short 2000 --n-bodies 500 --threads 2 --out st.npz

torch lives in that venv and never in the product's. Prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench import corpus
from bench.timing import measure


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-path", required=True)
    p.add_argument("--n-short", type=int, default=2000)
    p.add_argument("--n-bodies", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, help="npz for the vectors (parity reference)")
    args = p.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model_path, device="cpu")
    model.max_seq_length = 256  # what the model's sentence_bert_config.json says, and what AkiDB uses

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    with torch.inference_mode():
        figures, rows = measure(embed, corpus.load("short", args.n_short), corpus.load("bodies", args.n_bodies))
    np.save(args.out, rows)
    json.dump({"engine": "sentence-transformers", "torch": torch.__version__, **figures}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

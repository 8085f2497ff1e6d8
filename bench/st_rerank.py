"""sentence-transformers' CrossEncoder.predict as a timed child: the reranking baseline, run in the fixture venv only.

    .fixture-venv/bin/python -m bench.st_rerank --model-path DIR --pairs pairs.json --threads 2

torch lives in that venv and never in the product's. It loads the model, prints one JSON line of
sigmoid scores for the pairs, then answers each line `N` on stdin with one JSON line: N calls of
`predict(pairs, batch_size=len(pairs))` timed. bench/rerank.py drives it, alternating with AkiDB's arm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-path", required=True)
    p.add_argument("--pairs", type=Path, required=True, help="JSON list of [query, document]")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(args.threads)
    pairs = [tuple(pair) for pair in json.loads(args.pairs.read_text())]
    model = CrossEncoder(args.model_path, device="cpu", max_length=512)

    def predict() -> list[float]:
        scores = model.predict(pairs, batch_size=len(pairs), show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores]

    scores = predict()  # also the first-call costs, kept out of the timings
    print(json.dumps({"engine": "sentence-transformers CrossEncoder", "torch": torch.__version__, "scores": scores}))
    sys.stdout.flush()
    for line in sys.stdin:
        calls = int(line)
        start = time.perf_counter()
        for _ in range(calls):
            predict()
        seconds = time.perf_counter() - start
        print(json.dumps({"pairs_per_s": calls * len(pairs) / seconds, "seconds": seconds}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

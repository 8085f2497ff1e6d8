"""Reranking in-process (issue 22): AkiDB's OpenVINO cross-encoder vs sentence-transformers' CrossEncoder.predict.

    .venv/bin/python -m bench.rerank                       # 7 alternating rounds of 5 calls per arm
    .venv/bin/python -m bench.rerank --rounds 2 --calls 3  # seconds, to prove it works

Both run the same MiniLM-L6-size BertForSequenceClassification (random weights from seed 0,
all-MiniLM-L6-v2's tokenizer: tests/fixtures/make_tiny_rerankers.py --minilm-size, made once in
the fixture venv under bench/results/) on the same 32 pairs of ~100 tokens per call (a Debian
package summary as the query, a description cut to fit). The baseline is a child process in the
fixture venv (bench/st_rerank.py); the arms alternate within each round, their order swapped
every round, and each arm's figure is pairs/s over `--calls` calls. Also checks that the two
engines agree on the scores. Writes bench/results/rerank-<time>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import corpus
from bench.backends import machine
from shared.config import EmbeddingConfig
from worker.backends.openvino_rerank import OpenVinoCrossEncoder
from worker.loader import locate
from worker.pairs import Pair, PairEncoder, PairTokenizer
from worker.reranker import Reranker, sigmoid

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL_DIR = RESULTS / "minilm-size-reranker"
PAIR_TOKENS = 100


def ensure_model(fixture_python: str, folder: Path) -> None:
    """The MiniLM-size cross-encoder (~90 MB, never committed): made once by the fixture script."""
    if (folder / "model.safetensors").exists():
        return
    script = ROOT / "tests" / "fixtures" / "make_tiny_rerankers.py"
    subprocess.run([fixture_python, str(script), "--minilm-size", str(folder)], cwd=ROOT, check=True)


def make_pairs(tok: PairEncoder, n: int) -> list[Pair]:
    """`n` pairs of about PAIR_TOKENS tokens: each description cut, by words, to the longest fit."""
    queries = corpus.load("short", n)
    bodies = iter(corpus.load("bodies", 50 * n))
    pairs: list[Pair] = []
    for query in queries:
        for body in bodies:
            words = body.split()
            lengths = tok.encode([(query, " ".join(words[:k])) for k in range(1, len(words) + 1)]).token_counts
            fits = [k for k, length in enumerate(lengths, 1) if length <= PAIR_TOKENS]
            if lengths[-1] >= PAIR_TOKENS and fits:
                pairs.append((query, " ".join(words[: fits[-1]])))
                break
    if len(pairs) < n:
        raise RuntimeError(f"only {len(pairs)} descriptions reach {PAIR_TOKENS} tokens; run apt-get update")
    return pairs


def akidb_arm(folder: Path, precision: str, threads: int) -> Reranker:
    embedding = replace(EmbeddingConfig(), model_name="minilm-size-reranker", model_path=str(folder))
    source = locate(embedding)
    cross = OpenVinoCrossEncoder(source, precision, threads)
    return Reranker(source, PairTokenizer.from_folder(source.path, source.max_tokens), cross, batch_size=32)


def timed(reranker: Reranker, pairs: list[Pair], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        reranker.score(pairs)
    return calls * len(pairs) / (time.perf_counter() - start)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fixture-python", default=str(ROOT / ".fixture-venv" / "bin" / "python"))
    p.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=5, help="calls of 32 pairs per arm per round")
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precisions", default="f32,auto", help="AkiDB arms: OpenVINO precisions (auto: bf16 if native)")
    args = p.parse_args()
    ensure_model(args.fixture_python, args.model_dir)
    precisions = args.precisions.split(",")
    arms = {f"akidb openvino {prec}": akidb_arm(args.model_dir, prec, args.threads) for prec in precisions}
    first = next(iter(arms.values()))
    pairs = make_pairs(first.tokenizer, args.pairs)
    counts = first.tokenizer.encode(pairs).token_counts
    RESULTS.mkdir(parents=True, exist_ok=True)
    pairs_file = RESULTS / "rerank-pairs.json"
    pairs_file.write_text(json.dumps(pairs))

    cmd = [args.fixture_python, "-m", "bench.st_rerank", "--model-path", str(args.model_dir)]
    child = subprocess.Popen(
        [*cmd, "--pairs", str(pairs_file), "--threads", str(args.threads)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    baseline = json.loads(child.stdout.readline())
    reference = np.array(baseline.pop("scores"), dtype=np.float32)
    results: dict[str, Any] = {"machine": machine(), "args": vars(args) | {"model_dir": str(args.model_dir)}}
    results["pairs"] = {"n": len(pairs), "tokens_min": min(counts), "tokens_max": max(counts)}
    results["parity_max_abs_sigmoid_diff"] = {
        name: float(np.abs(sigmoid(arm.score(pairs).logits) - reference).max()) for name, arm in arms.items()
    }
    for arm in arms.values():  # first-call costs, as the baseline paid them on its first predict
        arm.score(pairs)

    def st_round() -> float:
        child.stdin.write(f"{args.calls}\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        return float(json.loads(child.stdout.readline())["pairs_per_s"])  # type: ignore[union-attr]

    names = ["sentence-transformers", *arms]
    figures: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            rate = st_round() if name == "sentence-transformers" else timed(arms[name], pairs, args.calls)
            figures[name].append(rate)
        print(f"round {r + 1}: " + ", ".join(f"{n} {figures[n][-1]:.0f}" for n in names), file=sys.stderr)
    child.stdin.close()
    child.wait(timeout=60)
    base = figures["sentence-transformers"]
    results["baseline"] = baseline
    results["precisions"] = {name: arm.model.precision for name, arm in arms.items()}
    results["pairs_per_s"] = {name: spread(values) for name, values in figures.items()}
    results["speedup_vs_crossencoder"] = {
        name: {
            "of_medians": round(statistics.median(figures[name]) / statistics.median(base), 2),
            "per_round": [round(a / b, 2) for a, b in zip(figures[name], base, strict=True)],
        }
        for name in arms
    }
    results["load_avg_at_end"] = os.getloadavg()
    out = RESULTS / f"rerank-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

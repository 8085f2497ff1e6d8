"""Static shape buckets against the dynamic-shape model, in-process, in one run (OpenVINO).

    python -m bench.shapes                         # 400 requests of 1 or 2 query texts, then per width
    python -m bench.shapes --buckets 1x16,2x16 --requests 1000 --threads 1

Both encoders live in one process and take turns call by call (the order flipping every other
request), so a burst of someone else's load lands on both arms: on a shared machine only this
comparison is meaningful, not the absolute figures. Requests alternate 1 and 2 new texts from the
bench query corpus (what `bench.arms --load embed12` sends), back to back and then `--gap-ms` apart
(a worker at 50 requests/s is idle between them). Then, per width, one text of exactly that many
tokens on the static model for it against the dynamic model. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.collection_corpus import texts as corpus_texts
from shared.config import load_config, parse_shape_buckets
from worker.backends.openvino_bert import OpenVinoBertEncoder
from worker.embedder import Embedder
from worker.loader import locate
from worker.tokenize import TextTokenizer


def quantiles(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.median(samples)), 2), "p95_ms": round(float(np.percentile(samples, 95)), 2)}


def interleaved(
    arms: dict[str, Callable[[Any], object]], inputs: Sequence[Any], gap_s: float
) -> dict[str, list[float]]:
    """Milliseconds per call of each arm on each input, the arms taking turns (order flipped every other input)."""
    out: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for i, item in enumerate(inputs):
        for name in names if i % 4 < 2 else names[::-1]:
            time.sleep(gap_s)
            start = time.perf_counter()
            arms[name](item)
            out[name].append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--buckets", default=None, help="embedding.shape_buckets for the bucket arm (default: the default)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--gap-ms", type=float, default=20)
    p.add_argument("--widths", default="8,12,16,24,32,64", help="token widths for the per-width part ('' skips)")
    args = p.parse_args()
    cfg = load_config(None, {}, [] if args.buckets is None else [f"embedding.shape_buckets={args.buckets}"])
    source = locate(cfg.embedding)
    tokenizer = TextTokenizer.from_folder(source.path, source.max_tokens)
    buckets = parse_shape_buckets(cfg.embedding.shape_buckets)
    encoders = {
        "dynamic": OpenVinoBertEncoder(source, args.precision, args.threads, None),
        "buckets": OpenVinoBertEncoder(source, args.precision, args.threads, None, buckets),
    }
    models = {name: Embedder(source, tokenizer, enc, cfg.embedding.batch_size) for name, enc in encoders.items()}
    for model in models.values():
        model.warm_up()
    texts = list(dict.fromkeys(corpus_texts(40_000, kind="mixed")))[-3 * args.requests // 2 - 2 :]
    report: dict[str, object] = {"buckets": cfg.embedding.shape_buckets, "precision": encoders["buckets"].precision,
                                 "threads": args.threads, "load_avg_at_start": os.getloadavg()}  # fmt: skip
    embeds = {name: (lambda batch, m=model: m.embed(batch)) for name, model in models.items()}
    for label, gap in (("back_to_back", 0.0), (f"{args.gap_ms:g}_ms_apart", args.gap_ms / 1000)):
        for n in (1, 2):
            batches = [texts[3 * i + n - 1 : 3 * i + 2 * n - 1] for i in range(args.requests // 2)]
            times = interleaved(embeds, batches, gap)
            report[f"{label}_{n}_text"] = {name: quantiles(t) for name, t in times.items()}
    rng = np.random.default_rng(0)
    per_width: dict[str, object] = {}
    for width in [int(w) for w in args.widths.split(",") if w]:
        static = OpenVinoBertEncoder(source, args.precision, args.threads, None, ((1, width),))
        ids = rng.integers(1000, 20_000, (100, 1, width)).astype(np.int32)
        passes = {name: (lambda x, e=enc: e.pooled(x, np.ones_like(x), "mean")) for name, enc in
                  (("dynamic", encoders["dynamic"]), ("static", static))}  # fmt: skip
        times = interleaved(passes, list(ids), 0.005)
        per_width[str(width)] = {name: quantiles(t)["p50_ms"] for name, t in times.items()}
    report["per_width_p50_ms"] = per_width
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""One AkiDB backend's in-process speed: tokenise → encoder → pool → normalise, no server.

    python -m bench.raw --backend openvino --threads 2 --out ov.npz

MLX is measured as the process finds it: run it with or without
LD_PRELOAD=<OpenBLAS> to compare the bundled reference BLAS with OpenBLAS (bench/backends.py
does both); the reported device says which one MLX really got. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench import corpus
from bench.timing import measure
from shared.config import load_config
from worker.backends.select import build_encoder
from worker.embedder import Embedder
from worker.loader import locate
from worker.tokenize import TextTokenizer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=("mlx", "openvino"), required=True)
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-short", type=int, default=2000)
    p.add_argument("--n-bodies", type=int, default=500)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", type=Path, required=True, help="npy for the vectors (short then bodies)")
    args = p.parse_args()
    sets = [f"embedding.precision={args.precision}", f"embedding.num_threads={args.threads}"]
    sets += [f"embedding.cache_dir={args.cache_dir}"] if args.cache_dir else ["embedding.compile_cache=false"]
    cfg = load_config(None, {}, sets)
    started = time.monotonic()
    source = locate(cfg.embedding)
    encoder = build_encoder(args.backend, source, cfg)
    model = Embedder(source, TextTokenizer.from_folder(source.path, source.max_tokens), encoder, 32)
    load_s = time.monotonic() - started

    def embed(texts: list[str]) -> np.ndarray:
        return model.embed(texts).vectors

    figures, rows = measure(embed, corpus.load("short", args.n_short), corpus.load("bodies", args.n_bodies))
    np.save(args.out, rows)
    info = model.info
    out = {"engine": f"akidb {info.backend}", "device": info.device, "precision": info.precision}
    json.dump({**out, "threads": args.threads, "load_s": round(load_s, 2), **figures}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

"""Real English texts for benchmarks: Debian package summaries and description paragraphs.

They come from apt's own lists on this machine (`apt-get update` fills /var/lib/apt/lists), so no
download is needed. `python -m bench.collection_corpus --vectors N OUT.npy` embeds the first N texts
through AkiDB itself (a gateway and workers it starts), for the recall and search benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from collections.abc import Iterator

import numpy as np

from bench import corpus
from bench.procs import Stack


def _descriptions() -> Iterator[tuple[str, list[str]]]:
    """(summary, long-description lines) for each package in the English translation lists."""
    corpus.ensure_lists()  # a fresh machine's apt may not keep them (Acquire::Languages "none")
    for path in corpus.translation_files():
        yield from corpus.descriptions(corpus.read(path))


def _first_sentence(paragraph: str, max_words: int = 30) -> str:
    """A paragraph's first sentence, at most `max_words` words: short texts keep embedding cheap."""
    words = " ".join(paragraph.split()).partition(". ")[0].split()
    return " ".join(words[:max_words])


def texts(limit: int, kind: str = "mixed") -> list[str]:
    """Up to `limit` distinct texts: "short" summaries only, or "mixed" (summaries, then paragraphs)."""
    seen: set[str] = set()
    out: list[str] = []
    paragraphs: list[str] = []
    for summary, body in _descriptions():
        if summary not in seen:
            seen.add(summary)
            out.append(summary)
        if kind == "mixed":
            paragraphs.extend(_first_sentence(p) for p in "\n".join(body).split("\n.\n") if p.strip())
        if len(out) >= limit:
            return out
    for p in paragraphs:
        if len(out) >= limit:
            break
        if p.strip(" .") and p not in seen:  # a paragraph of "." or nothing has no sentence to embed
            seen.add(p)
            out.append(p)
    return out


def embed_all(url: str, corpus: list[str], batch: int = 256) -> np.ndarray:
    """Embed texts through a running AkiDB's /embed, in order."""
    out = []
    for start in range(0, len(corpus), batch):
        body = json.dumps({"texts": corpus[start : start + batch]}).encode()
        req = urllib.request.Request(url + "/embed", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            out.append(np.array(json.load(resp)["embeddings"], dtype=np.float32))
        print(f"{start + batch}/{len(corpus)}", file=sys.stderr, flush=True)
    return np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vectors", type=int, required=True, help="how many texts to embed")
    p.add_argument("--workers", type=int, default=1, help="workers to start for it")
    p.add_argument("out", help="where to write the (N, 384) float32 .npy")
    args = p.parse_args()
    corpus = texts(args.vectors)
    with tempfile.TemporaryDirectory() as data, Stack(workers=args.workers, gateway_args=("--data-dir", data)) as stack:
        vectors = embed_all(stack.url, corpus)
    np.save(args.out, vectors)
    print(f"{len(corpus)} texts -> {args.out}")


if __name__ == "__main__":
    main()

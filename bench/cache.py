"""The embedding cache under repeating text searches: hit rate and latency with the cache on and off, one run.

    python -m bench.cache [--rate 100] [--duration 30] [--docs 10000] [--zipf-s 1.1]

Text searches whose queries repeat with Zipf(s = 1.1) popularity over 10,000 distinct texts (apt package
descriptions, bench/corpus.py) on a collection of --docs random vectors; the same query sequence goes to a
stack with the cache on (the default 64 MiB) and to one with cache.max_bytes=0. bench.arms does the work.
"""

from __future__ import annotations

from bench import arms

if __name__ == "__main__":
    arms.main(
        {"load": "text_search_zipf", "rate": 100}, ("cache_on=cache.max_bytes=67108864", "cache_off=cache.max_bytes=0")
    )

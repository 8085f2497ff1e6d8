"""Embedding work to workers: the dispatch state machine, batcher, worker table, cache."""

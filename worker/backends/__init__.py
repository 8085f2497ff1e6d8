"""Inference backends behind `worker.embedder.Encoder`. Each is imported only when chosen."""

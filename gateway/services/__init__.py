"""What the API does: collections, embedding, re-embedding, snapshots."""

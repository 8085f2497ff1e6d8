"""The AkiDB gateway: HTTP and gRPC APIs, request batching, worker dispatch and vector storage."""

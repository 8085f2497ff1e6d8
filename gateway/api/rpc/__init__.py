"""The gRPC front door: EmbeddingService, grpc.health.v1 and reflection, on the gateway's event loop."""

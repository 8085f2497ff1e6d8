"""The gRPC contract (embedding.proto) and its generated stubs; regenerate with `make proto`."""

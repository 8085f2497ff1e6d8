"""The edge: HTTP routes, gRPC, middleware, auth, schemas, OpenAPI, TLS, console."""

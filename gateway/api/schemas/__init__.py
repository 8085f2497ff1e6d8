"""The API's request and response bodies as msgspec Structs, declared once: REST, OpenAI and gRPC parse
with them, and /openapi.json is generated from them. One module per resource; `common` decodes and
words the errors."""

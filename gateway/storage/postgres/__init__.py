"""The PostgreSQL + pgvector engine: collections as tables in a database that several gateways share."""

"""Collections on disk: SQLite documents, USearch indexes, the service that owns them."""

"""The storage engine: collections on disk (SQLite documents, USearch indexes); imports nothing above it."""

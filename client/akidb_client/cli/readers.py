"""Streaming readers for `akidb import`: JSONL, CSV and Parquet rows as documents, one at a time.

Each row becomes a `Doc` whose `ref` says where it came from ("line 12", "row 7"); a row that cannot
be read becomes a `BadRow` with the reason, so the import reports it and goes on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akidb_client.types import Doc

FORMATS = ("jsonl", "csv", "parquet")


@dataclass(frozen=True, slots=True)
class Mapping:
    """Which fields of a row are the id, text, vector and metadata."""

    id_field: str = "id"
    text_field: str = "text"
    vector_field: str = "vector"
    # None: a `metadata` object if the row has one, else every field not mapped above.
    metadata_fields: Sequence[str] | None = None

    def to_doc(self, row: dict[str, Any], ref: str) -> Doc:
        """A row as a document; ValueError names what is wrong with it."""
        doc_id = row.get(self.id_field)
        text = row.get(self.text_field)
        vector = row.get(self.vector_field)
        if isinstance(vector, str):  # CSV cells hold the vector as a JSON array
            vector = json.loads(vector) if vector.strip() else None
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{self.text_field} must be a string, got {type(text).__name__}")
        if text is None and vector is None:
            raise ValueError(f"the row has neither {self.text_field!r} nor {self.vector_field!r}")
        return Doc(
            text=text,
            id=None if doc_id is None or doc_id == "" else str(doc_id),
            vector=vector,
            metadata=self.metadata(row),
            ref=ref,
        )

    def metadata(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if self.metadata_fields is not None:
            return {f: row[f] for f in self.metadata_fields if f in row} or None
        if isinstance(row.get("metadata"), dict) or ("metadata" in row and row["metadata"] is None):
            return row["metadata"]  # type: ignore[no-any-return]
        mapped = {self.id_field, self.text_field, self.vector_field}
        return {k: v for k, v in row.items() if k not in mapped} or None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be turned into a document."""

    ref: str
    message: str
    id: str | None = None


def detect(path: Path, fmt: str | None) -> str:
    """The file's format: given, or from its extension."""
    if fmt:
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path.name}; pass --format {'|'.join(FORMATS)}")


def count_rows(path: Path, fmt: str) -> int | None:
    """How many rows the file holds (for the progress bar's ETA), read in blocks, never whole."""
    if fmt == "parquet":
        return int(_parquet().ParquetFile(path).metadata.num_rows)
    lines = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
    return lines - 1 if fmt == "csv" else lines


def rows(path: Path, fmt: str, mapping: Mapping) -> Iterator[Doc | BadRow]:
    """Every row of the file, in order, as a `Doc` or a `BadRow`."""
    reader = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet_rows}[fmt]
    for ref, row in reader(path):
        if isinstance(row, str):
            yield BadRow(ref, row)
            continue
        try:
            yield mapping.to_doc(row, ref)
        except ValueError as exc:
            doc_id = row.get(mapping.id_field)
            yield BadRow(ref, str(exc), None if doc_id is None else str(doc_id))


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"line {number}", f"not JSON: {exc}"
                continue
            yield (
                f"line {number}",
                row if isinstance(row, dict) else f"a row must be a JSON object, got {type(row).__name__}",
            )


def _csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    with path.open(encoding="utf-8", newline="") as f:
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        reader = csv.DictReader(f, dialect=dialect)
        start = 2
        for row in reader:
            yield f"line {start}", {k: v for k, v in row.items() if k is not None}
            start = reader.line_num + 1


def _parquet(*_: Any) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("Parquet needs pyarrow: pip install 'akidb-client[parquet]'") from None
    return pq


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    number = 0
    for batch in _parquet().ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield f"row {number}", row

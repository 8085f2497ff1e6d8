"""What each `akidb` subcommand does; each takes the parsed arguments and returns the exit status."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from akidb_client.cli import readers
from akidb_client.cli.output import snippet, table
from akidb_client.client import AkiDB
from akidb_client.errors import NotFound
from akidb_client.types import Doc, Failure

MAX_REPORTED = 1000  # bad rows printed one by one; beyond that, a count


def connect(args: argparse.Namespace) -> AkiDB:
    """A client from --url/--api-key, else AKIDB_URL/AKIDB_API_KEY."""
    return AkiDB(args.url, api_key=args.api_key, timeout=args.timeout)


def collections(args: argparse.Namespace) -> int:
    with connect(args) as db:
        action = args.action or "list"
        if action == "list":
            rows = [(c.name, c.dimension, c.metric, c.model, c.document_count, c.id) for c in db.collections.list()]
            print(table(["name", "dimension", "metric", "model", "documents", "id"], rows))
        elif action == "create":
            options = {"dimension": args.dimension, "metric": args.metric, "model": args.model}
            created = db.collections.create(args.name, **options)
            print(
                f"created {created.name} ({created.id}): {created.dimension}-d {created.metric}, model {created.model}"
            )
        elif action == "info":
            info = db.collections.get(args.name)
            print(json.dumps({f: getattr(info, f) for f in info.__dataclass_fields__}, indent=2))
        elif action == "delete":
            if not args.yes and not _confirm(f"delete collection {args.name!r} and all its documents?"):
                print("not deleted", file=sys.stderr)
                return 1
            print(f"deleted {db.collections.delete(args.name)}")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"{question} pass --yes to confirm", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def import_file(args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt = readers.detect(path, args.format)
    fields = None if args.metadata_fields is None else [f for f in args.metadata_fields.split(",") if f]
    mapping = readers.Mapping(args.id_field, args.text_field, args.vector_field, fields)
    bad: list[Failure] = []

    def documents() -> Iterator[Doc]:
        for row in readers.rows(path, fmt, mapping):
            if isinstance(row, readers.BadRow):
                bad.append(Failure(row.ref, row.id, "unreadable_row", row.message))
            else:
                yield row

    with connect(args) as db:
        col = db.collection(args.collection)
        try:
            col.info()
        except NotFound:
            if not args.create:
                raise
            db.collections.create(args.collection, model=args.model)
        skip = {d.id for d in col.documents(page_size=1000)} if args.resume else None
        total = None if args.no_progress else readers.count_rows(path, fmt)
        report = col.add_documents(
            documents(),
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            progress=not args.no_progress,
            skip_ids=skip,
            total=total,
        )
    failed = sorted(bad + report.failed, key=_ref_order)
    for f in failed[:MAX_REPORTED]:
        print(f"{f.ref}: {'id ' + repr(f.id) + ': ' if f.id else ''}{f.code}: {f.message}", file=sys.stderr)
    if len(failed) > MAX_REPORTED:
        print(f"... and {len(failed) - MAX_REPORTED} more failed rows", file=sys.stderr)
    print(f"imported {report.inserted}, skipped {report.skipped} (already stored), failed {len(failed)}")
    return 1 if failed else 0


def _ref_order(f: Failure) -> tuple[int, str]:
    digits = str(f.ref).rsplit(" ", 1)[-1]
    return (int(digits), "") if digits.isdigit() else (0, str(f.ref))


def export(args: argparse.Namespace) -> int:
    out: TextIO = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    count = 0
    try:
        with connect(args) as db:
            for doc in db.collection(args.collection).documents(page_size=500, include_vector=args.vectors):
                row: dict[str, Any] = {"id": doc.id, "text": doc.text, "metadata": doc.metadata}
                if args.vectors and doc.vector is not None:
                    row["vector"] = doc.vector.tolist()
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count} documents", file=sys.stderr)
    return 0


def search(args: argparse.Namespace) -> int:
    vector = None if args.vector is None else json.loads(args.vector)
    flt = None if args.filter is None else json.loads(args.filter)
    include = ["text", "metadata"] + (["vector"] if args.json and args.vectors else [])
    rerank: Any = args.rerank
    if args.candidates is not None:
        if rerank is None:
            raise ValueError("--candidates sets how many hits --rerank reads; give --rerank too")
        rerank = {"candidates": args.candidates} | ({} if rerank is True else {"model": rerank})
    if rerank is not None:
        include.append("ranks")  # the search's own score comes back beside the reranker's
    with connect(args) as db:
        col = db.collection(args.collection)
        mode = {} if args.mode is None else {"mode": args.mode}
        result = col.search(args.query, vector=vector, k=args.k, filter=flt, include=include, rerank=rerank, **mode)
    if args.json:
        hits = [
            {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
            | ({"retrieval_score": h.retrieval_score} if h.retrieval_score is not None else {})
            | ({"vector": h.vector.tolist()} if h.vector is not None else {})
            for h in result
        ]
        print(json.dumps({"results": hits, "query_embedded": result.query_embedded, "took_ms": result.took_ms}))
        return 0
    if rerank is not None:
        rows: list[tuple[Any, ...]] = [
            (i, h.score, h.retrieval_score, h.id, snippet(h.text, 60), snippet(h.metadata, 30))
            for i, h in enumerate(result, 1)
        ]
        print(table(["#", "score", "retrieval", "id", "text", "metadata"], rows))
    else:
        rows = [(i, h.score, h.id, snippet(h.text, 60), snippet(h.metadata, 40)) for i, h in enumerate(result, 1)]
        print(table(["#", "score", "id", "text", "metadata"], rows))
    embedded = ", query embedded" if result.query_embedded else ""
    reranked = ", reranked" if rerank is not None else ""
    print(f"{len(result)} results in {result.took_ms:.1f} ms{embedded}{reranked}")
    return 0


def rerank(args: argparse.Namespace) -> int:
    if args.documents and args.file:
        raise ValueError("give the documents after the query or with --file, not both")
    documents = args.documents or _lines(args.file)
    if not documents:
        raise ValueError("no documents to rerank: give them after the query, with --file, or one per line on stdin")
    with connect(args) as db:
        out = db.rerank(args.query, documents, top_n=args.top_n, model=args.model)
    if args.json:
        results = [
            {"index": r.index, "relevance_score": r.relevance_score, "document": documents[r.index]} for r in out
        ]
        print(json.dumps({"results": results, "model": out.model, "usage": {"total_tokens": out.total_tokens}}))
        return 0
    rows = [(i, r.relevance_score, r.index, snippet(documents[r.index], 80)) for i, r in enumerate(out, 1)]
    print(table(["#", "score", "index", "document"], rows))
    print(f"{len(out)} of {len(documents)} documents, model {out.model}, {out.total_tokens} tokens")
    return 0


def _lines(path: str | None) -> list[str]:
    """The non-blank lines of a file, or of stdin (no path, or '-')."""
    if path in (None, "-"):
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def snapshot(args: argparse.Namespace) -> int:
    with connect(args) as db:
        col = db.collection(args.collection)
        if args.action == "create":
            made = col.snapshot()
            print(f"created snapshot {made.name}: {made.documents} documents, {made.size} bytes")
        elif args.action == "list":
            rows = [(s.name, s.documents, s.size, _when(s.created_at)) for s in col.snapshots()]
            print(table(["name", "documents", "bytes", "created"], rows))
        elif args.action == "download":
            path = col.download_snapshot(args.name, args.output or f"{args.name}.akidb-snapshot")
            print(f"saved {path} ({path.stat().st_size} bytes)")
        else:
            col.delete_snapshot(args.name)
            print(f"deleted snapshot {args.name}")
    return 0


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def restore(args: argparse.Namespace) -> int:
    with connect(args) as db:
        made = db.collections.restore(args.file, name=args.collection)
    print(f"restored {made.name} ({made.id}): {made.document_count} documents, {made.dimension}-d {made.metric}")
    return 0


def embed(args: argparse.Namespace) -> int:
    texts = args.texts or _lines(None)
    with connect(args) as db:
        out = db.embed(texts, args.model)
    if args.json:
        print(json.dumps({"model": out.model, "dimension": out.dimension, "embeddings": out.vectors.tolist()}))
        return 0
    print(f"model {out.model}, dimension {out.dimension}, {out.total_tokens} tokens, {out.duration_ms:.0f} ms")
    for text, vec in zip(texts, out.vectors, strict=True):
        head = " ".join(f"{x:+.4f}" for x in vec[:6])
        print(f"{snippet(text, 40):40}  [{head} …]")
    return 0

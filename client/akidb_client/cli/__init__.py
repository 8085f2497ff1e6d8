"""`akidb`: collections, import, export, search, rerank and embed from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from akidb_client.cli import commands, readers
from akidb_client.errors import AkiDBError


def parser() -> argparse.ArgumentParser:
    """The `akidb` argument parser."""
    top = argparse.ArgumentParser(prog="akidb", description="AkiDB from the command line.")
    top.add_argument(
        "--url",
        help="gateway URL, or several separated by commas: the next is used when one fails "
        "(default: $AKIDB_URL, else http://localhost:8080)",
    )
    top.add_argument("--api-key", help="API key (default: $AKIDB_API_KEY)")
    top.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    sub = top.add_subparsers(dest="command", required=True)

    col = sub.add_parser("collections", help="list, create, delete or describe collections")
    col.set_defaults(run=commands.collections)
    actions = col.add_subparsers(dest="action")
    actions.add_parser("list", help="every collection with its document count")
    create = actions.add_parser("create", help="create a collection")
    create.add_argument("name")
    create.add_argument("--model", help="embedding model (default: the server's)")
    create.add_argument("--dimension", type=int, help="must equal the model's (default: the model's)")
    create.add_argument("--metric", choices=("cosine", "l2", "ip"))
    info = actions.add_parser("info", help="a collection's description as JSON")
    info.add_argument("name")
    delete = actions.add_parser("delete", help="delete a collection and its documents")
    delete.add_argument("name")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    imp = sub.add_parser("import", help="stream a JSONL, CSV or Parquet file into a collection")
    imp.set_defaults(run=commands.import_file)
    imp.add_argument("file")
    imp.add_argument("--collection", "-c", required=True)
    imp.add_argument("--format", choices=readers.FORMATS, help="default: from the file's extension")
    imp.add_argument("--id-field", default="id")
    imp.add_argument("--text-field", default="text")
    imp.add_argument("--vector-field", default="vector")
    imp.add_argument(
        "--metadata-fields",
        help="comma-separated fields to keep as metadata (default: a 'metadata' object, else every other field)",
    )
    imp.add_argument("--resume", action="store_true", help="skip rows whose id is already stored")
    imp.add_argument("--create", action="store_true", help="create the collection if it does not exist")
    imp.add_argument("--model", help="with --create: the new collection's model")
    imp.add_argument("--batch-size", type=int, default=256, help="documents per request (default 256)")
    imp.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")

    exp = sub.add_parser("export", help="write a collection as JSONL (id, text, metadata[, vector])")
    exp.set_defaults(run=commands.export)
    exp.add_argument("--collection", "-c", required=True)
    exp.add_argument("--output", "-o", help="file (default: stdout)")
    exp.add_argument("--vectors", action="store_true", help="include each document's vector")

    srch = sub.add_parser("search", help="nearest documents to a text or a vector")
    srch.set_defaults(run=commands.search)
    srch.add_argument("query", nargs="?", help="the text to search for")
    srch.add_argument("--collection", "-c", required=True)
    srch.add_argument("--vector", help="a JSON array instead of a text")
    srch.add_argument("-k", type=int, default=10)
    srch.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"topic": "ai"}\'')
    srch.add_argument(
        "--mode", choices=("dense", "keyword", "hybrid"), help="how candidates are found (default: dense)"
    )
    srch.add_argument(
        "--rerank",
        nargs="?",
        const=True,
        metavar="MODEL",
        help="reorder the candidates with a reranker (the server's default, or MODEL); shows both scores",
    )
    srch.add_argument("--candidates", type=int, help="with --rerank: how many hits the reranker reads (server: 50)")
    srch.add_argument("--json", action="store_true", help="JSON output for scripts")
    srch.add_argument("--vectors", action="store_true", help="with --json: include vectors")

    rr = sub.add_parser(
        "rerank",
        help="order documents by relevance to a query with a reranker (cross-encoder)",
        description="Order documents by relevance to QUERY, best first. The documents are the arguments after "
        "QUERY, else the lines of --file, else the lines of stdin (one document per line).",
    )
    rr.set_defaults(run=commands.rerank)
    rr.add_argument("query")
    rr.add_argument("documents", nargs="*", metavar="DOC")
    rr.add_argument("--file", "-f", help="one document per line ('-': stdin)")
    rr.add_argument("--top-n", "-n", type=int, help="keep the best N (default: all)")
    rr.add_argument("--model", help="reranker model (default: the server's)")
    rr.add_argument("--json", action="store_true", help="JSON output for scripts")

    snap = sub.add_parser("snapshot", help="create, list, download or delete a collection's snapshots")
    snap.set_defaults(run=commands.snapshot)
    snap_actions = snap.add_subparsers(dest="action", required=True)
    for action, text in [
        ("create", "snapshot the collection now (it keeps serving)"),
        ("list", "the collection's snapshots"),
        ("download", "save a snapshot file"),
        ("delete", "delete a snapshot"),
    ]:
        one = snap_actions.add_parser(action, help=text)
        one.add_argument("--collection", "-c", required=True)
        if action in ("download", "delete"):
            one.add_argument("name", help="the snapshot's name (see `akidb snapshot list`)")
        if action == "download":
            one.add_argument("--output", "-o", help="file (default: ./<name>.akidb-snapshot)")

    rest = sub.add_parser("restore", help="create a new collection from a snapshot file")
    rest.set_defaults(run=commands.restore)
    rest.add_argument("file")
    rest.add_argument("--collection", "-c", required=True, help="the new collection's name (must not exist)")

    emb = sub.add_parser("embed", help="embed texts (arguments, else one per line of stdin)")
    emb.set_defaults(run=commands.embed)
    emb.add_argument("texts", nargs="*")
    emb.add_argument("--model")
    emb.add_argument("--json", action="store_true", help="the vectors as JSON")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `akidb` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except AkiDBError as exc:
        print(f"akidb: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"akidb: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""A small fake AkiDB on a loopback socket that answers reranking in the issue's exact shapes.

It stands in for the gateway where a test is about the client's side of the wire (what it sends,
how it reads the answer), so those tests run without a worker. It scores a (query, document)
pair by the share of the query's words the document holds: deterministic, and a different order
from its "retrieval" ranking (the order the documents are stored in), so a reranked search is
told apart from a plain one. Every request body is kept in `requests` for the tests to read.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-reranker"
# What the tests rerank: the third holds every word of QUERY, the second some, the first none.
QUERY = "what is machine learning"
TEXTS = ["Paris is the capital of France", "Machine learning is a subset of AI", "What is machine learning?"]
DOCS = [
    {"id": "paris", "text": "Paris is the capital of France"},
    {"id": "rome", "text": "Rome is the capital of Italy"},
    {"id": "ml", "text": "Machine learning is a subset of artificial intelligence"},
    {"id": "what-ml", "text": "What is machine learning? Learning from data"},
]


class BadInput(Exception):
    """A 4xx with AkiDB's error body."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def relevance(query: str, document: str) -> float:
    """The share of the query's words in the document, 0..1."""
    q = words(query)
    return round(len(q & words(document)) / max(len(q), 1), 6)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model", MODEL)
    if model not in (MODEL, None):
        raise BadInput(f"no worker serves model {model!r}", 404, "model_not_found")
    return MODEL


def v1_rerank(body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/rerank: {model, query, documents, top_n, return_documents}."""
    unknown = set(body) - {"model", "query", "documents", "top_n", "return_documents"}
    if unknown:
        raise BadInput(f"unknown field {sorted(unknown)[0]!r}")
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        raise BadInput("query must be a non-empty string")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise BadInput("documents must be a non-empty list of strings")
    top_n = body.get("top_n", len(documents))
    if not isinstance(top_n, int) or top_n < 1:
        raise BadInput(f"top_n must be at least 1, got {top_n}")
    model = _model(body)
    order = sorted(range(len(documents)), key=lambda i: -relevance(query, documents[i]))
    results = []
    for i in order[:top_n]:
        item: dict[str, Any] = {"index": i, "relevance_score": relevance(query, documents[i])}
        if body.get("return_documents"):
            item["document"] = {"text": documents[i]}
        results.append(item)
    tokens = sum(len(words(query)) + len(words(d)) for d in documents)
    return {"results": results, "model": model, "usage": {"total_tokens": tokens}}


def one_search(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One member of a search: the stored order is the retrieval ranking; `rerank` reorders by relevance."""
    k = body.get("k", 10)
    include = body.get("include", ["text", "metadata"])
    hits = [{"doc": d, "score": round(1 - 0.1 * i, 6), "ranks": {"dense": i + 1}} for i, d in enumerate(DOCS)]
    rerank = body.get("rerank")
    if rerank:
        options = rerank if isinstance(rerank, dict) else {}
        _model(options)
        if "query" not in body:
            raise BadInput("rerank reads the query's text: give query, not only a vector")
        candidates = hits[: options.get("candidates", max(50, k))]
        for h in candidates:
            h["retrieval_score"], h["score"] = h["score"], relevance(body["query"], h["doc"]["text"])
        hits = sorted(candidates, key=lambda h: -h["score"])
        for place, h in enumerate(hits, start=1):
            h["ranks"] = {**h["ranks"], "rerank": place}
    out = []
    for h in hits[:k]:
        item = {"id": h["doc"]["id"], "score": h["score"]}
        if "text" in include:
            item["text"] = h["doc"]["text"]
        if "ranks" in include:
            item["ranks"] = h["ranks"]
            if "retrieval_score" in h:
                item["retrieval_score"] = h["retrieval_score"]
        out.append(item)
    return out


def search(body: dict[str, Any]) -> dict[str, Any]:
    """POST /collections/{c}/search: one search or a batch (`queries`)."""
    if "queries" in body:
        return {"results": [one_search(q) for q in body["queries"]], "took_ms": 0.5}
    return {"results": one_search(body), "query_embedded": "query" in body, "took_ms": 0.5}


class FakeAkiDB:
    """`with FakeAkiDB() as fake:` serves on `fake.url` until the block ends."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append((self.path, body))
                try:
                    if self.path == "/v1/rerank":
                        self._answer(200, v1_rerank(body))
                    elif self.path.startswith("/collections/") and self.path.endswith("/search"):
                        self._answer(200, search(body))
                    else:
                        raise BadInput(f"no route {self.path}", 404, "not_found")
                except BadInput as exc:
                    self._answer(exc.status, {"error": {"code": exc.code, "message": str(exc)}})

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAkiDB:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

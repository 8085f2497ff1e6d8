"""Streaming many documents: batching, skipping, and finding the bad rows of a refused batch.

The per-batch logic is a generator of `Call`s (it yields a request, is sent the answer or thrown the
error), so the sync and async clients run the same code with their own transports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Generator, Iterable, Iterator
from itertools import islice
from typing import Any

from akidb_client import _api
from akidb_client._api import Call, DocLike
from akidb_client.errors import AkiDBError, BadRequest, PayloadTooLarge
from akidb_client.types import Doc, Failure, ImportReport, Inserted

Outcome = tuple[int, list[Failure]]
BatchSteps = Generator[Call[list[Inserted]], list[Inserted], Outcome]


def prepare(items: Iterable[DocLike], report: ImportReport, skip_ids: Container[str] | None) -> Iterator[Doc]:
    """Documents to send, each with a `ref` (its position unless it has one); refusals and skips counted."""
    for index, item in enumerate(items):
        try:
            doc = _api.to_doc(item)
        except ValueError as exc:
            report.failed.append(Failure(index, None, "invalid_input", str(exc)))
            continue
        if doc.ref is None:
            doc = dataclasses.replace(doc, ref=index)
        if doc.text is None and doc.vector is None:
            report.failed.append(Failure(doc.ref, doc.id, "invalid_input", "a document needs text or a vector"))
        elif skip_ids is not None and doc.id is not None and doc.id in skip_ids:
            report.skipped += 1
        else:
            yield doc


def batches(docs: Iterator[Doc], size: int) -> Iterator[list[Doc]]:
    """Consecutive lists of at most `size` documents, read lazily (the stream is never held whole)."""
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    while batch := list(islice(docs, size)):
        yield batch


def store(collection: str, docs: list[Doc]) -> BatchSteps:
    """Store a batch; a refused batch is halved until each bad document is found with the server's reason.

    A batch is all-or-nothing on the server, so halving stores every good document of it and costs
    about 2·log2(n) extra requests per bad one.
    """
    try:
        yield _api.insert(collection, docs)
        return len(docs), []
    except (BadRequest, PayloadTooLarge) as exc:
        if len(docs) == 1:
            return 0, [Failure(docs[0].ref, docs[0].id, exc.code, exc.message)]
        mid = len(docs) // 2
        ok_a, failed_a = yield from store(collection, docs[:mid])
        ok_b, failed_b = yield from store(collection, docs[mid:])
        return ok_a + ok_b, failed_a + failed_b
    except AkiDBError as exc:
        return 0, [Failure(d.ref, d.id, exc.code, exc.message) for d in docs]


def tally(report: ImportReport, outcome: Outcome, bar: Any) -> None:
    """Add a batch's outcome to the report and move the bar to every document settled so far."""
    stored, failed = outcome
    report.inserted += stored
    report.failed.extend(failed)
    bar.update(report.inserted + report.skipped + len(report.failed) - bar.n)


def progress_bar(progress: bool, total: int | None, desc: str = "import") -> Any:
    """A tqdm bar counting documents, with docs/s (and an ETA when the total is known)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="doc", desc=desc, disable=not progress, dynamic_ncols=True)

"""The maps from storage's exceptions and the dispatcher's failures to API errors; both front doors apply them."""

from __future__ import annotations

import inspect
import json
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.api.middleware import errors
from gateway.api.rpc.service import CODE_KEY, answer
from gateway.dispatch.failures import Failure, Reason
from gateway.errors import DISPATCH_ERRORS, STORAGE_ERRORS, ApiError, as_api_error, from_dispatch, from_storage
from gateway.storage import errors as storage

NOT_FOUND, INVALID, EXISTS = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS

# What clients have always seen for each of these: the codes and statuses are public API.
EXPECTED = [
    (storage.CollectionNotFound, "collection_not_found", 404, NOT_FOUND),
    (storage.DocumentNotFound, "document_not_found", 404, NOT_FOUND),
    (storage.CollectionExists, "collection_exists", 409, EXISTS),
    (storage.InvalidFilter, "invalid_filter", 400, INVALID),
    # 400 as the seed API specifies, with its own code (the document lists it; schemathesis.toml says why).
    (storage.DimensionMismatch, "dimension_mismatch", 400, INVALID),
    (storage.InvalidVector, "invalid_input", 400, INVALID),
    (storage.KeywordSyntaxError, "invalid_input", 400, INVALID),
    (storage.StorageFull, "insufficient_storage", 507, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (storage.ModelChanged, "model_changed", 503, grpc.StatusCode.UNAVAILABLE),
    (storage.FulltextPending, "fulltext_pending", 503, grpc.StatusCode.UNAVAILABLE),
    (storage.JobConflict, "job_conflict", 409, EXISTS),
    (storage.JobNotFound, "job_not_found", 404, NOT_FOUND),
    (storage.LeaseLost, "job_conflict", 409, EXISTS),
    (storage.VectorOnlyDocuments, "invalid_input", 400, INVALID),
    (storage.SnapshotNotFound, "snapshot_not_found", 404, NOT_FOUND),
    (storage.SnapshotInvalid, "invalid_snapshot", 400, INVALID),
    # The PostgreSQL engine's: a feature it lacks names the engine (501), a database away is worth a retry
    (storage.UnstorableValue, "invalid_input", 400, INVALID),
    (storage.EngineUnsupported, "not_implemented", 501, grpc.StatusCode.UNIMPLEMENTED),
    (storage.EngineUnavailable, "storage_unavailable", 503, grpc.StatusCode.UNAVAILABLE),
]
# Errors that stop the gateway at start-up: never met while serving, so never mapped.
STARTUP_ONLY = {storage.StorageError, storage.DataDirUnusable}


@pytest.mark.parametrize(("exc_type", "code", "http_status", "grpc_status"), EXPECTED)
def test_each_storage_error_keeps_its_code_status_message_and_param(
    exc_type: type[storage.StorageError], code: str, http_status: int, grpc_status: grpc.StatusCode
) -> None:
    api = from_storage(exc_type("what went wrong; what to change", param="field"))
    assert api is not None
    assert (api.code, api.http_status, api.grpc_status) == (code, http_status, grpc_status)
    assert (api.message, api.param) == ("what went wrong; what to change", "field")
    assert api.body() == {"error": {"code": code, "message": "what went wrong; what to change"}}


def test_every_storage_error_but_the_base_is_mapped() -> None:
    declared = {
        cls
        for _, cls in inspect.getmembers(storage, inspect.isclass)
        if issubclass(cls, storage.StorageError) and cls not in STARTUP_ONLY
    }
    assert declared == set(STORAGE_ERRORS) == {row[0] for row in EXPECTED}


# What callers have always seen when the dispatcher could not deliver their texts.
DISPATCHED = [
    (Reason.QUEUE_FULL, "queue_full", 503, grpc.StatusCode.UNAVAILABLE),
    (Reason.SHUTTING_DOWN, "no_worker", 503, grpc.StatusCode.UNAVAILABLE),
    (Reason.DEADLINE, "timeout", 504, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Reason.INVALID_JOB, "invalid_input", 400, INVALID),
    (Reason.WORKER_FAILED, "worker_error", 502, grpc.StatusCode.INTERNAL),
    (Reason.POISONED, "worker_failed", 502, grpc.StatusCode.INTERNAL),
]


@pytest.mark.parametrize(("reason", "code", "http_status", "grpc_status"), DISPATCHED)
def test_each_dispatch_failure_keeps_its_code_status_and_message(
    reason: Reason, code: str, http_status: int, grpc_status: grpc.StatusCode
) -> None:
    api = from_dispatch(Failure(reason, "what went wrong; what to change"))
    assert (api.code, api.http_status, api.grpc_status) == (code, http_status, grpc_status)
    assert api.message == "what went wrong; what to change"
    assert set(DISPATCH_ERRORS) == set(Reason) == {row[0] for row in DISPATCHED}


def test_an_unusable_data_directory_met_while_serving_is_a_bug() -> None:
    assert from_storage(storage.StorageError("data directory is in use")) is None
    assert from_storage(storage.DataDirUnusable("data directory is read-only")) is None
    assert as_api_error(RuntimeError("boom")) is None
    own = ApiError("x")
    assert as_api_error(own) is own


async def test_http_answers_a_storage_error_with_its_api_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise storage.DocumentNotFound("no document 'd1' in collection 'c'", param="doc_id")

    # The middleware called directly, as aiohttp would: the rendering is the unit, not the server.
    resp = await errors(make_mocked_request("GET", "/doc"), handler)
    assert isinstance(resp, web.Response) and resp.status == 404
    assert resp.text is not None and json.loads(resp.text) == {
        "error": {"code": "document_not_found", "message": "no document 'd1' in collection 'c'"}
    }


class Aborted(Exception):
    pass


class FakeContext:
    """The two calls `answer` makes on a grpc.aio context."""

    def __init__(self) -> None:
        self.aborted: tuple[Any, ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "r1"),)

    async def abort(self, status: grpc.StatusCode, message: str, trailing_metadata: Any = ()) -> None:
        self.aborted = (status, message, dict(trailing_metadata))
        raise Aborted


async def test_grpc_answers_a_storage_error_with_its_api_error() -> None:
    async def work() -> None:
        raise storage.CollectionExists("a collection named 'a' already exists", param="name")

    context = FakeContext()
    with pytest.raises(Aborted):
        await answer(context, work())  # type: ignore[arg-type]
    status, message, metadata = context.aborted
    assert status == grpc.StatusCode.ALREADY_EXISTS
    assert message == "a collection named 'a' already exists"
    assert metadata[CODE_KEY] == "collection_exists" and metadata["x-request-id"] == "r1"
